//! Family 942: SQL injection, by reading values as a SQL lexer would.
//!
//! A value is tokenized (strings, numbers, words, operators, brackets,
//! comments, variables), in the contexts it may land in: as is, and after
//! each quote it contains (a string break). The token stream is then
//! judged by what only injected SQL does: a logic operator and a
//! comparison right after a string break, a comment that cuts the query
//! short, a stacked statement, UNION/SELECT structure, SQL functions and
//! system catalogs. No list of payloads, no regular expressions.

use super::Value;
use crate::normalize::strip_sql_comments;
use crate::request::Location;
use crate::score::{Finding, Severity, fragment};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Str,
    Num,
    Word(String),
    Op(String),
    Open,
    Close,
    Comma,
    Semi,
    Comment,
    Var,
}

/// Functions that only SQL injection probes call.
const DISTINCTIVE_FUNCTIONS: &[&str] = &[
    "sleep",
    "benchmark",
    "pg_sleep",
    "load_file",
    "extractvalue",
    "updatexml",
    "xmltype",
    "group_concat",
    "concat_ws",
    "json_extract",
    "json_keys",
    "name_const",
    "make_set",
    "geometrycollection",
    "multipoint",
    "multipolygon",
    "linestring",
    "utl_http",
    "utl_inaddr",
    "dbms_pipe",
    "dbms_xmlgen",
    "sys_context",
    "current_user",
    "system_user",
    "session_user",
    "unhex",
    "nchar",
    "randomblob",
    "sqlite_version",
    "pg_read_file",
    "lo_import",
    "openrowset",
    "opendatasource",
    "xp_cmdshell",
    "sp_executesql",
    "db_name",
    "object_name",
    "col_name",
    "host_name",
    "suser_name",
    "user_name",
    "find_in_set",
    "sqlite_compileoption_get",
    "starts_with",
    "sysdate",
    "uncompress",
    "lo_get",
    "schema_name",
];

/// Functions whose names are also words ("if", "count", "user"): only
/// with SQL around them.
const GENERIC_FUNCTIONS: &[&str] = &[
    "if",
    "count",
    "user",
    "char",
    "mid",
    "ord",
    "hex",
    "exp",
    "floor",
    "cast",
    "convert",
    "version",
    "schema",
    "substring",
    "substr",
    "ascii",
    "elt",
    "rand",
    "concat",
    "coalesce",
    "ifnull",
    "database",
    "iif",
    "cos",
    "sin",
    "div",
    "now",
    "compress",
    "md5",
    "sha1",
    "trim",
    "rtrim",
    "ltrim",
    "pow",
    "decode",
    "encode",
    "insert",
    "strcmp",
    "replace",
    "reverse",
    "length",
    "lower",
    "upper",
    "lpad",
    "rpad",
    "instr",
    "locate",
    "field",
];

/// Any SQL function these lists know.
fn sql_function(name: &str) -> bool {
    DISTINCTIVE_FUNCTIONS.contains(&name) || GENERIC_FUNCTIONS.contains(&name)
}

/// Words that start a statement (after `;`, a stacked query).
const STATEMENTS: &[&str] = &[
    "select", "insert", "update", "delete", "drop", "truncate", "declare", "exec", "execute", "shutdown", "create",
    "alter", "set", "waitfor", "grant", "revoke", "merge", "call", "load", "handler", "rename", "replace", "copy",
];

/// Words that continue a table definition or change.
const DDL_CLAUSES: &[&str] =
    &["add", "change", "modify", "column", "constraint", "primary", "foreign", "references", "engine", "charset"];

/// Catalogs an attacker reads to map the database.
static CATALOG_WORDS: super::Needles = super::Needles::new(CATALOGS);

const CATALOGS: &[&str] = &[
    "information_schema",
    "pg_catalog",
    "pg_shadow",
    "pg_user",
    "sysobjects",
    "syscolumns",
    "sysusers",
    "sys.tables",
    "sys.objects",
    "mysql.user",
    "mysql.db",
    "sqlite_master",
    "sqlite_schema",
    "all_tables",
    "user_tables",
    "all_users",
    "msysobjects",
    "msysaccessobjects",
    "master..sysdatabases",
    "dba_users",
    "tempdb",
    "msdb",
    "northwind",
    "schema_name",
];

fn finding(check: &'static str, v: &Value<'_>, what: &str) -> Finding {
    Finding {
        family: 942,
        check,
        paranoia: 1,
        severity: Severity::Critical,
        location: v.field.location.owned(),
        fragment: fragment(what),
    }
}

/// Tokens of `s` (already lower case).
fn tokens(s: &str) -> Vec<Tok> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() && out.len() < 64 {
        let ch = c[i];
        match ch {
            _ if ch.is_whitespace() => i += 1,
            '\'' | '"' | '`' => {
                let close = c[i + 1..].iter().position(|x| *x == ch).map_or(c.len(), |p| i + 1 + p);
                out.push(Tok::Str);
                i = close + 1;
            }
            '0'..='9' => {
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Num);
            }
            '(' | '[' | '{' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' | ']' | '}' => {
                out.push(Tok::Close);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ';' => {
                out.push(Tok::Semi);
                i += 1;
            }
            '#' => {
                out.push(Tok::Comment);
                i = c.len();
            }
            '-' if c.get(i + 1) == Some(&'-') => {
                out.push(Tok::Comment);
                i = c.len();
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                out.push(Tok::Comment);
                i += 2;
            }
            '@' => {
                while i < c.len() && (c[i] == '@' || c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Var);
            }
            _ if ch.is_alphabetic() || ch == '_' || ch == '$' => {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || matches!(c[i], '_' | '$' | '.')) {
                    i += 1;
                }
                out.push(Tok::Word(c[start..i].iter().collect()));
            }
            _ => {
                let start = i;
                while i < c.len() && "=<>!|&+-*/%^~:".contains(c[i]) && i - start < 3 {
                    i += 1;
                }
                if i == start {
                    i += 1;
                } else {
                    out.push(Tok::Op(c[start..i].iter().collect()));
                }
            }
        }
    }
    out
}

fn is_word(t: &Tok, words: &[&str]) -> bool {
    matches!(t, Tok::Word(w) if words.contains(&w.as_str()))
}

/// Whether the tokens after a statement keyword read like that statement
/// rather than like prose: `select the blue one` and `1 Drop Lane` are
/// words, `select user()`, `select * from`, `drop table users` are SQL.
fn statement_follows<T: std::borrow::Borrow<Tok>>(keyword: &Tok, rest: &[T]) -> bool {
    let rest: Vec<&Tok> = rest.iter().map(|t| t.borrow()).take(12).collect();
    let next = rest.first().copied();
    let has_word = |words: &[&str]| rest.iter().any(|t| is_word(t, words));
    let call = rest.windows(2).any(|w| matches!((w[0], w[1]), (Tok::Word(_), Tok::Open)));
    match keyword {
        Tok::Word(k) => match k.as_str() {
            "select" => {
                has_word(&["from", "null"])
                    || call
                    || matches!(next, Some(Tok::Num | Tok::Str | Tok::Var | Tok::Open))
                    || matches!(next, Some(Tok::Op(o)) if o == "*")
                    || rest.is_empty()
            }
            "drop" | "create" | "alter" | "truncate" => {
                next.is_some_and(|n| {
                    is_word(n, &["table", "database", "procedure", "function", "user", "view", "index", "schema"])
                }) && rest.len() >= 2
            }
            "insert" | "replace" => has_word(&["into", "values"]),
            "update" => has_word(&["set"]),
            "delete" => has_word(&["from"]),
            "declare" => matches!(next, Some(Tok::Var)),
            "exec" | "execute" => {
                matches!(next, Some(Tok::Word(w)) if w.starts_with("xp_") || w.starts_with("sp_") || w.starts_with("master") || w == "immediate")
                    || call
            }
            "shutdown" | "waitfor" => true,
            _ => next.is_some_and(|n| !matches!(n, Tok::Word(_))) || rest.len() >= 2 && call,
        },
        _ => false,
    }
}

/// After `;`: keywords that are also everyday words (`; select the blue
/// one`, `; call me`) need SQL after them; the others do not.
fn stacked_statement<T: std::borrow::Borrow<Tok>>(keyword: &Tok, rest: &[T]) -> bool {
    const EVERYDAY: &[&str] = &[
        "select", "set", "update", "delete", "create", "drop", "load", "call", "copy", "replace", "rename", "merge",
        "grant", "declare", "alter",
    ];
    !is_word(keyword, EVERYDAY) || statement_follows(keyword, rest)
}

fn logic(t: &Tok) -> bool {
    is_word(t, &["or", "and", "xor", "div", "not", "like", "rlike", "regexp", "sounds", "is", "in", "between"])
        || matches!(t, Tok::Op(o) if o == "||" || o == "&&")
}

fn comparison(t: &Tok) -> bool {
    matches!(t, Tok::Op(o) if ["=", "==", "<", ">", "<=", ">=", "!=", "<>", "<=>", "?", "?|", "?&", "->", "->>", "#>", "#>>", "@>", "<@"].contains(&o.as_str()))
        || is_word(t, &["like", "rlike", "regexp", "is", "in", "between"])
}

fn operand(t: &Tok) -> bool {
    matches!(t, Tok::Str | Tok::Num | Tok::Var | Tok::Word(_))
}

/// After a string break (or at the start of a number): `or 1=1`,
/// `and 'a'='a`, `or sleep(5)`, `|| (select …)`, `;drop …`, `--`.
fn injected_tail(t: &[Tok]) -> Option<&'static str> {
    let t: Vec<&Tok> = t.iter().filter(|x| !matches!(x, Tok::Close)).collect();
    match t.as_slice() {
        [] => None,
        [Tok::Comment, ..] => Some("comment"),
        // `' < '$.a`: a comparison straight after the string.
        [Tok::Op(o), Tok::Str | Tok::Num, ..] if comparison(&Tok::Op(o.clone())) && o != "-" => Some("comparison"),
        // `` ` AS `x` FROM ``, `` ` REGEXP ``: the string was a column.
        [a, _, f, ..] if is_word(a, &["as"]) && is_word(f, &["from"]) => Some("alias"),
        [w] if is_word(w, &["like", "rlike", "regexp"]) => Some("dangling-operator"),
        // `' sleep(5) '`: a probe function right after the string.
        [Tok::Word(w), Tok::Open, ..] if DISTINCTIVE_FUNCTIONS.contains(&w.as_str()) => Some("call"),
        // `' + sleep(5) + '`, `' || pg_sleep(1)`: a call concatenated in.
        [Tok::Op(o), Tok::Word(_), Tok::Open, ..] if ["+", "||", "-", "|"].contains(&o.as_str()) => Some("concat-call"),
        // `'select …`: a statement right where the string ended.
        [w, ..] if is_word(w, &["select", "insert", "update", "delete", "drop", "exec", "execute", "declare"]) => {
            Some("statement")
        }
        [op, not, Tok::Word(_), Tok::Open, ..] if logic(op) && is_word(not, &["not"]) => Some("logic-call"),
        [Tok::Semi, next, rest @ ..] if is_word(next, STATEMENTS) && stacked_statement(next, rest) => {
            Some("stacked-query")
        }
        [Tok::Semi, Tok::Comment, ..] | [Tok::Semi] => Some("comment"),
        [op, a, cmp, b, ..] if logic(op) && operand(a) && comparison(cmp) && operand(b) => Some("tautology"),
        [op, Tok::Open, ..] | [op, Tok::Word(_), Tok::Open, ..] if logic(op) => Some("logic-call"),
        [op, w, ..] if logic(op) && is_word(w, &["select", "sleep", "benchmark", "pg_sleep", "exists"]) => {
            Some("logic-call")
        }
        [op, a, ..] if logic(op) && matches!(a, Tok::Num | Tok::Str | Tok::Var) && t.len() <= 3 => Some("tautology"),
        [w, ..] if is_word(w, &["union", "order", "group", "having", "procedure", "into", "limit", "waitfor"]) => {
            Some("clause")
        }
        _ => None,
    }
}

/// Whole-value structure: UNION SELECT, SELECT … FROM, statements after
/// `;`, SQL functions called, catalogs named.
fn structure(t: &[Tok], raw: &str) -> Option<&'static str> {
    for (i, tok) in t.iter().enumerate() {
        let next = t.get(i + 1);
        let after_next = t.get(i + 2);
        if is_word(tok, &["union"])
            && next.is_some_and(|n| is_word(n, &["select", "all", "distinct"]) || matches!(n, Tok::Open))
        {
            return Some("union-select");
        }
        if is_word(tok, &["select"]) && t[i + 1..].iter().take(12).any(|x| is_word(x, &["from"])) {
            return Some("select-from");
        }
        if matches!(tok, Tok::Semi)
            && next.is_some_and(|n| is_word(n, STATEMENTS) && stacked_statement(n, t.get(i + 2..).unwrap_or_default()))
        {
            return Some("stacked-query");
        }
        if is_word(tok, &["select"])
            && next.is_some_and(|n| matches!(n, Tok::Word(w) if DISTINCTIVE_FUNCTIONS.contains(&w.as_str())))
        {
            return Some("select-function");
        }
        // A value that opens with a logic operator and a comparison:
        // `OR '{"a":1}' ? 'a'` (JSON operators), `and 1=1`.
        if i == 0 && logic(tok) && injected_tail(t).is_some_and(|w| w == "tautology") {
            return Some("logic-start");
        }
        if is_word(tok, &["insert"]) && next.is_some_and(|n| is_word(n, &["into"])) {
            return Some("insert-into");
        }
        // `drop table users` needs something that ends the statement it
        // was smuggled into; "drop table leaf" is a furniture search.
        let ends_statement = i > 0 && matches!(t[i - 1], Tok::Semi | Tok::Str | Tok::Comment | Tok::Close);
        if is_word(tok, &["drop", "create", "alter", "truncate"])
            && next
                .is_some_and(|n| is_word(n, &["table", "database", "procedure", "function", "user", "view", "index"]))
            && (ends_statement
                || t[i..].iter().any(|x| matches!(x, Tok::Comment | Tok::Semi | Tok::Open | Tok::Str))
                || t[i + 2..].iter().any(|x| is_word(x, DDL_CLAUSES)))
        {
            return Some("ddl");
        }
        if is_word(tok, &["procedure"]) && next.is_some_and(|n| is_word(n, &["analyse", "analyze"])) {
            return Some("procedure-analyse");
        }
        if is_word(tok, &["declare"]) && matches!(next, Some(Tok::Var)) {
            return Some("declare");
        }
        if is_word(tok, &["as"])
            && i > 0
            && matches!(t[i - 1], Tok::Str | Tok::Num)
            && matches!(next, Some(Tok::Str))
            && after_next.is_some_and(|x| is_word(x, &["from"]))
        {
            return Some("alias-from");
        }
        if let (Tok::Op(o), Some(Tok::Word(_))) = (tok, next)
            && o == "::"
        {
            return Some("cast");
        }
        if matches!(tok, Tok::Op(o) if ["@>", "<@", "->>", "#>>", "?|", "?&"].contains(&o.as_str())) {
            return Some("json-operator");
        }
        if is_word(tok, &["into"]) && next.is_some_and(|n| is_word(n, &["outfile", "dumpfile"])) {
            return Some("into-outfile");
        }
        if is_word(tok, &["case"])
            && t[i + 1..].iter().take(8).any(|x| is_word(x, &["when"]))
            && t[i + 1..].iter().take(16).any(|x| is_word(x, &["then"]))
        {
            return Some("case-when");
        }
        if matches!(tok, Tok::Close)
            && next.is_some_and(|n| is_word(n, &["like", "rlike", "regexp"]))
            && matches!(after_next, Some(Tok::Open))
        {
            return Some("like-subquery");
        }
        if is_word(tok, &["waitfor"]) && next.is_some_and(|n| is_word(n, &["delay", "time"])) {
            return Some("waitfor");
        }
        if is_word(tok, &["execute", "exec"])
            && next.is_some_and(|n| {
                is_word(n, &["immediate", "sp_executesql"])
                    || matches!(n, Tok::Word(w) if w.starts_with("master"))
                    || matches!(n, Tok::Word(w) if w.starts_with("xp_") || w.starts_with("sp_"))
            })
        {
            return Some("exec");
        }
        if let (Tok::Word(w), Some(Tok::Open)) = (tok, next) {
            let name = w.rsplit('.').next().unwrap_or(w);
            if sql_function(name) || sql_function(w) {
                // `if (` and `count (` are words too: only with SQL around.
                let generic = GENERIC_FUNCTIONS.contains(&name);
                let sql_around = t.iter().any(|x| {
                    matches!(x, Tok::Str | Tok::Semi | Tok::Comment | Tok::Var)
                        || logic(x)
                        || is_word(x, &["select", "from", "where"])
                }) || after_next
                    .is_some_and(|x| matches!(x, Tok::Close | Tok::Num | Tok::Str | Tok::Word(_) | Tok::Open))
                    || t.len() <= 3;
                if !generic || sql_around {
                    return Some("sql-function");
                }
            }
        }
    }
    if ["unionselect", "union(select", "union+select", "unionall"].iter().any(|p| raw.contains(p)) {
        return Some("union-select");
    }
    CATALOG_WORDS.any_in(raw).then_some("catalog")
}

pub fn check(values: &[Value<'_>], out: &mut Vec<Finding>) {
    for v in values {
        if matches!(v.field.location, Location::Method | Location::Header(_))
            && !matches!(&v.field.location, Location::Header(h) if h == "referer" || h == "user-agent" || h == "x-forwarded-for")
        {
            continue;
        }
        let raw = v.forms.last().map(|f| f.to_lowercase()).unwrap_or_default();
        let text = strip_sql_comments(&raw);
        let all = tokens(&raw);
        // NoSQL operators smuggled in as keys: `id[$ne]=`, `{"$where": …}`.
        let mongo = [
            "$where",
            "$ne",
            "$gt",
            "$gte",
            "$lt",
            "$lte",
            "$in",
            "$nin",
            "$regex",
            "$not",
            "$nor",
            "$or",
            "$and",
            "$exists",
            "$expr",
            "$elemmatch",
            "$text",
            "$search",
            "$size",
            "$type",
            "$mod",
            "$all",
        ];
        let key =
            matches!(v.field.location, Location::BodyName(_) | Location::QueryName(_)) && mongo.contains(&raw.as_str());
        let nosql = key
            || ["[$", "{\"$", "{$"].iter().any(|p| {
                raw.match_indices(p).any(|(at, _)| raw[at + p.len()..].starts_with(|c: char| c.is_ascii_alphabetic()))
            });
        if nosql {
            out.push(finding("nosql-operator", v, &raw));
            continue;
        }
        // Optimizer hints and version comments: SQL hidden in comments.
        let hinted = raw.match_indices("/*").any(|(at, _)| raw[at + 2..].trim_start().starts_with(['+', '!']));
        if hinted {
            out.push(finding("sqli-comment-code", v, &raw));
            continue;
        }
        if let Some(what) = structure(&tokens(&text), &text) {
            out.push(finding(if what == "catalog" { "sqli-catalog" } else { "sqli-structure" }, v, what));
            continue;
        }
        // A number first: `1 or 1=1`, `-1 and 526=527`, `1) or (1=1`.
        // A number and a statement word is an address ("100 Select Ave")
        // unless SQL follows the word.
        if let [Tok::Num, rest @ ..] | [Tok::Op(_), Tok::Num, rest @ ..] = all.as_slice()
            && let Some(what) = injected_tail(rest)
            && what != "comment"
            && (what != "statement" || rest.first().is_some_and(|w| statement_follows(w, &rest[1..])))
        {
            out.push(finding("sqli-numeric", v, what));
            continue;
        }
        // After each quote: where a string literal the value sits in would end.
        for (at, q) in raw.char_indices().filter(|(_, c)| matches!(c, '\'' | '"' | '`')) {
            let tail = &raw[at + q.len_utf8()..];
            let tail_tokens = tokens(tail);
            // The rest must start like SQL, not like the next word of prose.
            if let Some(what) = injected_tail(&tail_tokens) {
                let prose =
                    matches!(tail_tokens.first(), Some(Tok::Word(w)) if w == "s" || w == "t" || w == "ll" || w == "re");
                if !prose {
                    out.push(finding("sqli-string-break", v, what));
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Request;
    use crate::score::inspect;

    fn blocked(target: &str) -> bool {
        inspect(&Request::from_parts("GET", target, crate::request::NO_HEADERS, b""), 1, 5).blocked
    }

    #[test]
    fn injections_are_caught() {
        for attack in [
            "/?id=1'+or+'1'='1",
            "/?id=1234+OR+1=1",
            "/?id=-1'+and+526=527",
            "/?id=admin'--",
            "/?id=1+union+select+1,2",
            "/?id=1;drop+table+users",
            "/?id=1'+waitfor+delay'0:0:5'--",
            "/?q=sleep(5)",
            "/?q=load_file(",
            "/?q=pg_catalog",
            "/?q=1)+or+(1=1",
            "/?q=x%22+or+sleep(10)+%22",
        ] {
            assert!(blocked(attack), "{attack}");
        }
    }

    #[test]
    fn shop_text_passes() {
        for benign in [
            "/?q=O'Reilly",
            "/?q=it's+5+or+6+cups",
            "/?q=rock+'n'+roll",
            "/?q=select+coffee",
            "/?q=Tom's+order+from+Berlin",
            "/?q=\"best\"+espresso+or+latte",
            "/?q=count+of+beans",
            "/?q=10+-+20+EUR",
            "/?q=2+for+1",
        ] {
            assert!(!blocked(benign), "{benign}");
        }
    }
}
