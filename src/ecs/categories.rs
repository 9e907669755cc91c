//! The pipeline's `Add ECS categorization` table: `event.category` / `event.type` per `event.action`.

/// A list of ECS values, `None` when the entry does not set the field.
pub type Values = Option<&'static [&'static str]>;

/// `(action, categories, types)`, sorted by action.
pub const CATEGORIES: &[(&str, Values, Values)] = &[
    ("AddUserToGroup", Some(&["iam"]), Some(&["group", "change"])),
    ("AssumeRole", Some(&["authentication"]), Some(&["info"])),
    (
        "AttachGroupPolicy",
        Some(&["iam"]),
        Some(&["group", "change"]),
    ),
    ("AttachRolePolicy", Some(&["iam"]), Some(&["change"])),
    (
        "AttachUserPolicy",
        Some(&["iam"]),
        Some(&["user", "change"]),
    ),
    (
        "AuthorizeSecurityGroupIngress",
        Some(&["network"]),
        Some(&["access"]),
    ),
    ("ChangePassword", Some(&["iam"]), Some(&["user", "change"])),
    ("ConsoleLogin", Some(&["authentication"]), Some(&["info"])),
    ("Converse", Some(&["api"]), Some(&[])),
    ("CreateAccessKey", Some(&["iam"]), Some(&["user", "change"])),
    ("CreateBucket", Some(&["file"]), Some(&["creation"])),
    ("CreateControlChannel", Some(&["session"]), Some(&["start"])),
    ("CreateDataChannel", Some(&["session"]), Some(&["start"])),
    ("CreateDocument", Some(&["file"]), Some(&["creation"])),
    ("CreateGroup", Some(&["iam"]), Some(&["group", "creation"])),
    (
        "CreateKeyPair",
        Some(&["iam"]),
        Some(&["admin", "creation"]),
    ),
    ("CreatePolicy", Some(&["iam"]), Some(&["creation"])),
    ("CreateTopic", Some(&["configuration"]), Some(&["creation"])),
    ("CreateUser", Some(&["iam"]), Some(&["user", "creation"])),
    (
        "CreateVirtualMFADevice",
        Some(&["iam"]),
        Some(&["user", "change"]),
    ),
    (
        "DeactivateMFADevice",
        Some(&["iam"]),
        Some(&["user", "change"]),
    ),
    ("DeleteAccessKey", Some(&["iam"]), Some(&["user", "change"])),
    ("DeleteBucket", Some(&["file"]), Some(&["deletion"])),
    ("DeleteGroup", Some(&["iam"]), Some(&["group", "deletion"])),
    (
        "DeleteGroupPolicy",
        Some(&["iam"]),
        Some(&["group", "change"]),
    ),
    ("DeleteObject", Some(&["file"]), Some(&["delete"])),
    (
        "DeleteSSHPublicKey",
        Some(&["iam"]),
        Some(&["user", "change"]),
    ),
    ("DeleteTrail", Some(&["configuration"]), Some(&["deletion"])),
    ("DeleteUser", Some(&["iam"]), Some(&["user", "deletion"])),
    (
        "DeleteUserPermissionsBoundary",
        Some(&["iam"]),
        Some(&["user", "change"]),
    ),
    (
        "DeleteUserPolicy",
        Some(&["iam"]),
        Some(&["user", "change"]),
    ),
    (
        "DeleteVirtualMFADevice",
        Some(&["iam"]),
        Some(&["user", "change"]),
    ),
    ("DescribeDBInstances", Some(&["database"]), Some(&["info"])),
    ("DescribeInstances", Some(&["host"]), Some(&["info"])),
    ("DescribeLoadBalancers", Some(&["network"]), Some(&["info"])),
    ("DescribeNetworkAcls", Some(&["network"]), Some(&["info"])),
    (
        "DescribeNetworkInterfaces",
        Some(&["network"]),
        Some(&["info"]),
    ),
    ("DescribeRegions", Some(&["api"]), Some(&["info"])),
    (
        "DescribeSecurityGroups",
        Some(&["network"]),
        Some(&["info"]),
    ),
    ("DescribeTrails", Some(&["configuration"]), Some(&["info"])),
    ("DescribeVolumes", Some(&["host"]), Some(&["info"])),
    ("DescribeVpcs", Some(&["network"]), Some(&["info"])),
    (
        "DetachGroupPolicy",
        Some(&["iam"]),
        Some(&["group", "change"]),
    ),
    (
        "DetachUserPolicy",
        Some(&["iam"]),
        Some(&["user", "change"]),
    ),
    ("EnableMFADevice", Some(&["iam"]), Some(&["user", "change"])),
    (
        "GetCallerIdentity",
        Some(&["authentication"]),
        Some(&["info"]),
    ),
    ("GetGroup", Some(&["iam"]), Some(&["group", "info"])),
    ("GetGroupPolicy", Some(&["iam"]), Some(&["group", "info"])),
    ("GetObject", Some(&["file"]), Some(&["info"])),
    ("GetPolicy", Some(&["iam"]), Some(&["info"])),
    ("GetUser", Some(&["iam"]), Some(&["user", "info"])),
    ("GetUserPolicy", Some(&["iam"]), Some(&["user", "info"])),
    ("HeadObject", Some(&["file"]), Some(&["info"])),
    (
        "ListAttachedGroupPolicies",
        Some(&["iam"]),
        Some(&["group", "info"]),
    ),
    ("ListAttachedRolePolicies", Some(&["iam"]), Some(&["info"])),
    (
        "ListAttachedUserPolicies",
        Some(&["iam"]),
        Some(&["user", "info"]),
    ),
    ("ListBuckets", Some(&["file"]), Some(&["info"])),
    ("ListFunctions", Some(&["package"]), Some(&["info"])),
    (
        "ListGroupPolicies",
        Some(&["iam"]),
        Some(&["group", "info"]),
    ),
    ("ListGroups", Some(&["iam"]), Some(&["group", "info"])),
    ("ListGroupsForUser", Some(&["iam"]), Some(&["user", "info"])),
    ("ListInstanceAssociations", Some(&["host"]), Some(&["info"])),
    ("ListObjects", Some(&["file"]), Some(&["info"])),
    ("ListRoles", Some(&["iam"]), Some(&["info"])),
    ("ListTables", Some(&["database"]), Some(&["info"])),
    ("ListUserPolicies", Some(&["iam"]), Some(&["user", "info"])),
    ("ListUserTags", Some(&["iam"]), Some(&["user", "info"])),
    ("ListUsers", Some(&["iam"]), Some(&["user", "info"])),
    ("OpenControlChannel", Some(&["session"]), Some(&["start"])),
    ("OpenDataChannel", Some(&["session"]), Some(&["start"])),
    ("Publish", Some(&["api"]), Some(&[])),
    ("PutGroupPolicy", Some(&["iam"]), Some(&["group", "change"])),
    ("PutObject", Some(&["file"]), Some(&["change"])),
    (
        "PutUserPermissionsBoundary",
        Some(&["iam"]),
        Some(&["user", "change"]),
    ),
    ("PutUserPolicy", Some(&["iam"]), Some(&["user", "change"])),
    (
        "RemoveUserFromGroup",
        Some(&["iam"]),
        Some(&["group", "change"]),
    ),
    ("SendCommand", Some(&["process"]), Some(&[])),
    (
        "SetDefaultPolicyVersion",
        Some(&["iam"]),
        Some(&["admin", "change"]),
    ),
    (
        "SetSecurityTokenServicePreferences",
        Some(&["iam"]),
        Some(&["admin", "change"]),
    ),
    ("StartSession", Some(&["session"]), Some(&["start"])),
    ("Subscribe", Some(&["configuration"]), Some(&["change"])),
    ("TagUser", Some(&["iam"]), Some(&["user", "change"])),
    ("TerminateSession", Some(&["session"]), Some(&["end"])),
    ("UntagUser", Some(&["iam"]), Some(&["user", "change"])),
    ("UpdateAccessKey", Some(&["iam"]), Some(&["user", "change"])),
    (
        "UpdateAccountPasswordPolicy",
        Some(&["iam"]),
        Some(&["admin", "change"]),
    ),
    ("UpdateGroup", Some(&["iam"]), Some(&["group", "change"])),
    (
        "UpdateLoginProfile",
        Some(&["iam"]),
        Some(&["user", "change"]),
    ),
    ("UpdateRole", Some(&["iam"]), Some(&["admin", "change"])),
    (
        "UpdateSSHPublicKey",
        Some(&["iam"]),
        Some(&["user", "change"]),
    ),
    ("UpdateUser", Some(&["iam"]), Some(&["user", "change"])),
];

/// The entry for `action`, if the table has one: `(categories, types)`.
pub fn lookup(action: &str) -> Option<(Values, Values)> {
    CATEGORIES
        .binary_search_by(|e| e.0.cmp(action))
        .ok()
        .map(|i| (CATEGORIES[i].1, CATEGORIES[i].2))
}
