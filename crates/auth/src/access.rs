//! Roles and the one policy function that decides who may do what.
//!
//! Every route will name the [`Permission`] it needs and ask [`allows`];
//! nothing else in the store decides access. The table is small on purpose,
//! so a reviewer can read it whole.

/// What an account is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountRole {
    /// Runs the store: everything, including other staff.
    Owner,
    /// Everything but managing owners.
    Admin,
    /// Catalog and orders.
    Staff,
    /// Reads orders to answer customers; no exports, refunds or prices.
    Support,
    /// A shopper with an account: only their own things.
    Customer,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Anyone, signed in or not (browsing, carts, checkout).
    Public,
    /// A signed-in customer acting on their own account and orders.
    OwnAccount,
    ReadOrders,
    ManageOrders,
    EditCatalog,
    ChangePrices,
    Refund,
    ExportData,
    ReadSecurityEvents,
    ManageStaff,
    ManageApiTokens,
}

impl AccountRole {
    /// Every role, for exhaustive tests.
    pub const ALL: [AccountRole; 5] =
        [AccountRole::Owner, AccountRole::Admin, AccountRole::Staff, AccountRole::Support, AccountRole::Customer];

    /// Staff roles must have a second factor before any staff route works.
    pub fn is_staff(self) -> bool {
        !matches!(self, AccountRole::Customer)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Owner => "owner",
            AccountRole::Admin => "admin",
            AccountRole::Staff => "staff",
            AccountRole::Support => "support",
            AccountRole::Customer => "customer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The one policy function.
pub fn allows(role: AccountRole, permission: Permission) -> bool {
    use AccountRole::*;
    use Permission::*;
    match permission {
        Public => true,
        OwnAccount => true,
        ReadOrders => matches!(role, Owner | Admin | Staff | Support),
        ManageOrders | EditCatalog | ChangePrices => matches!(role, Owner | Admin | Staff),
        Refund | ExportData | ReadSecurityEvents | ManageApiTokens => matches!(role, Owner | Admin),
        ManageStaff => matches!(role, Owner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccountRole::*;
    use Permission::*;

    #[test]
    fn the_policy_table() {
        let table: [(Permission, [bool; 5]); 11] = [
            //                    owner  admin  staff  support customer
            (Public, [true, true, true, true, true]),
            (OwnAccount, [true, true, true, true, true]),
            (ReadOrders, [true, true, true, true, false]),
            (ManageOrders, [true, true, true, false, false]),
            (EditCatalog, [true, true, true, false, false]),
            (ChangePrices, [true, true, true, false, false]),
            (Refund, [true, true, false, false, false]),
            (ExportData, [true, true, false, false, false]),
            (ReadSecurityEvents, [true, true, false, false, false]),
            (ManageApiTokens, [true, true, false, false, false]),
            (ManageStaff, [true, false, false, false, false]),
        ];
        for (permission, expected) in table {
            for (role, want) in AccountRole::ALL.into_iter().zip(expected) {
                assert_eq!(allows(role, permission), want, "{role:?} {permission:?}");
            }
        }
    }

    #[test]
    fn support_cannot_export_refund_or_change_prices() {
        for p in [ExportData, Refund, ChangePrices] {
            assert!(!allows(Support, p));
        }
        assert!(Support.is_staff() && !Customer.is_staff());
        for r in AccountRole::ALL {
            assert_eq!(AccountRole::parse(r.as_str()), Some(r));
        }
    }
}
