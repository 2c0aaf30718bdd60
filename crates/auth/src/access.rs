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
    /// Any signed-in account, even staff who still owe a second factor:
    /// only enrollment, own sessions and signing out.
    SignedIn,
    /// A fully signed-in account acting on its own things.
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
    /// Erasing a customer's personal data, and legal holds on it.
    ErasePersonalData,
    /// Sending the newsletter (to those who consented).
    SendNewsletter,
    /// Registering endpoints that receive order events.
    ManageWebhooks,
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

impl Permission {
    /// Every permission, for exhaustive tests and scope parsing.
    pub const ALL: [Permission; 15] = [
        Permission::Public,
        Permission::SignedIn,
        Permission::OwnAccount,
        Permission::ReadOrders,
        Permission::ManageOrders,
        Permission::EditCatalog,
        Permission::ChangePrices,
        Permission::Refund,
        Permission::ExportData,
        Permission::ReadSecurityEvents,
        Permission::ManageStaff,
        Permission::ManageApiTokens,
        Permission::ErasePersonalData,
        Permission::SendNewsletter,
        Permission::ManageWebhooks,
    ];

    /// Stable snake_case name, as API token scopes spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Public => "public",
            Permission::SignedIn => "signed_in",
            Permission::OwnAccount => "own_account",
            Permission::ReadOrders => "read_orders",
            Permission::ManageOrders => "manage_orders",
            Permission::EditCatalog => "edit_catalog",
            Permission::ChangePrices => "change_prices",
            Permission::Refund => "refund",
            Permission::ExportData => "export_data",
            Permission::ReadSecurityEvents => "read_security_events",
            Permission::ManageStaff => "manage_staff",
            Permission::ManageApiTokens => "manage_api_tokens",
            Permission::ErasePersonalData => "erase_personal_data",
            Permission::SendNewsletter => "send_newsletter",
            Permission::ManageWebhooks => "manage_webhooks",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether an API token may carry this permission as a scope. Managing
    /// staff and minting tokens stay with people who passed a second factor.
    pub fn grantable_to_tokens(self) -> bool {
        !matches!(
            self,
            Permission::Public
                | Permission::SignedIn
                | Permission::ManageStaff
                | Permission::ManageApiTokens
                | Permission::ManageWebhooks
        )
    }
}

/// The one policy function.
pub fn allows(role: AccountRole, permission: Permission) -> bool {
    use AccountRole::*;
    use Permission::*;
    match permission {
        Public | SignedIn | OwnAccount => true,
        ReadOrders => matches!(role, Owner | Admin | Staff | Support),
        ManageOrders | EditCatalog | ChangePrices | SendNewsletter => matches!(role, Owner | Admin | Staff),
        Refund | ExportData | ReadSecurityEvents | ManageApiTokens | ErasePersonalData | ManageWebhooks => {
            matches!(role, Owner | Admin)
        }
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
        let table: [(Permission, [bool; 5]); 15] = [
            //                    owner  admin  staff  support customer
            (Public, [true, true, true, true, true]),
            (SignedIn, [true, true, true, true, true]),
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
            (ErasePersonalData, [true, true, false, false, false]),
            (SendNewsletter, [true, true, true, false, false]),
            (ManageWebhooks, [true, true, false, false, false]),
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
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        for r in AccountRole::ALL {
            assert_eq!(AccountRole::parse(r.as_str()), Some(r));
        }
    }
}
