//! The pipeline's `script_append_related_entity` script (runs when the document's tags contain
//! `actor_target_mapping`): actor and target entity ids per event source and event name, sorted
//! like Java `TreeSet`s, and `related.entity`.
//!
//! Painless quirks kept: `addValues` stops adding after the first null, empty or duplicate value;
//! a non-string value where the script expects a `String` fails the whole script (the pipeline
//! then tags the document `preserve_original_event` and sets `error.message`).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::json::{Json, Obj};

/// A string ordered like Java's `String.compareTo` (UTF-16 code units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaString(pub String);

impl Ord for JavaString {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.encode_utf16().cmp(other.0.encode_utf16())
    }
}

impl PartialOrd for JavaString {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

type Set = BTreeSet<JavaString>;

/// A `ClassCastException` or `NullPointerException` in the script.
#[derive(Debug)]
pub struct ScriptFailure(pub String);

/// What the script sets: `(dotted field, values)` in the order the script sets them.
pub type EntityFields = Vec<(&'static str, Vec<String>)>;

const USER_RESOURCE_TYPES: &[&str] = &[
    "user",
    "role",
    "assumed-role",
    "federated-user",
    "instance-profile",
    "mfa",
    "serialNumber",
];
const HOST_RESOURCE_TYPES: &[&str] = &["instance", "volume", "snapshot", "image"];
const SERVICE_RESOURCE_TYPES: &[&str] = &[
    "stack",
    "stack-set",
    "trail",
    "configuration-recorder",
    "file-system",
    "mount-target",
    "rule",
    "detector",
    "key",
    "function",
    "log-group",
    "log-stream",
    "alarm",
    "db",
    "cluster",
    "global-cluster",
    "trust-anchor",
    "resolver-query-log-config",
    "secret",
    "parameter",
    "document",
    "session",
    "webacl",
    "rulegroup",
    "ipset",
    "topic",
    "model",
    "loadbalancer",
    "table",
    "group",
    "policy",
    "security-group",
    "network-interface",
    "vpc",
    "subnet",
    "network-acl",
    "dhcp-options",
];
const HOST_ID_PREFIXES: &[&str] = &["i-", "vol-", "snap-", "ami-"];
const SERVICE_ID_PREFIXES: &[&str] = &[
    "sg-", "sgr-", "eni-", "vpc-", "subnet-", "acl-", "rtb-", "igw-", "nat-", "vpce-", "tgw-",
    "pcx-",
];
const USER_IDENTITY_TYPES: &[&str] = &["IAMUser", "Root", "AssumedRole"];

/// `$("json.a.b", null)`: the value at a dotted path of the (pruned) record.
pub fn lookup<'a>(rec: &'a Obj, path: &str) -> Option<&'a Json> {
    let mut parts = super::json::segments(path);
    let mut cur = rec.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    if cur.is_null() {
        None
    } else {
        Some(cur)
    }
}

fn as_string(v: Option<&Json>) -> Result<Option<&str>, ScriptFailure> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(other) => Err(ScriptFailure(format!(
            "class_cast_exception: cannot cast {} to java.lang.String",
            type_name(other)
        ))),
    }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Bool(_) => "java.lang.Boolean",
        Json::Number(n) if n.is_f64() => "java.lang.Double",
        Json::Number(_) => "java.lang.Integer",
        Json::Array(_) => "java.util.ArrayList",
        Json::Object(_) => "java.util.HashMap",
        _ => "java.lang.Object",
    }
}

fn add_value(set: &mut Set, v: Option<&str>) -> bool {
    match v {
        None | Some("") => false,
        Some(s) => set.insert(JavaString(s.to_string())),
    }
}

fn add_field(set: &mut Set, rec: &Obj, path: &str) -> Result<(), ScriptFailure> {
    add_value(set, as_string(lookup(rec, path))?);
    Ok(())
}

fn add_fields(set: &mut Set, rec: &Obj, paths: &[&str]) -> Result<(), ScriptFailure> {
    for p in paths {
        add_field(set, rec, p)?;
    }
    Ok(())
}

/// `addValues`: every element is cast to `String`; adding stops after the first `false`.
fn add_values(set: &mut Set, values: &[Option<&Json>]) -> Result<(), ScriptFailure> {
    let mut added_all = true;
    for v in values {
        let s = as_string(*v)?;
        added_all = added_all && add_value(set, s);
    }
    Ok(())
}

fn items<'a>(rec: &'a Obj, path: &str) -> Result<Vec<&'a Json>, ScriptFailure> {
    match lookup(rec, path) {
        None => Ok(Vec::new()),
        Some(Json::Array(a)) => Ok(a.iter().collect()),
        Some(other) => Err(ScriptFailure(format!(
            "class_cast_exception: cannot cast {} to java.util.List",
            type_name(other)
        ))),
    }
}

/// `i.field` on a list element (null when the element is not a map or lacks the key).
fn member<'a>(v: &'a Json, key: &str) -> Option<&'a Json> {
    v.as_object()
        .and_then(|m| m.get(key))
        .filter(|x| !x.is_null())
}

fn path<'a>(v: &'a Json, keys: &[&str]) -> Option<&'a Json> {
    let mut cur = v;
    for k in keys {
        cur = member(cur, k)?;
    }
    Some(cur)
}

fn add_resource_arns(set: &mut Set, rec: &Obj) -> Result<(), ScriptFailure> {
    for r in items(rec, "resources")? {
        add_value(set, as_string(member(r, "ARN"))?);
    }
    Ok(())
}

/// Runs the script over the pruned record (`json` = `rec`).
pub fn entity_fields(rec: &Obj) -> Result<EntityFields, ScriptFailure> {
    let mut related = Set::new();
    let mut target = Set::new();
    let mut actor: Option<String> = as_string(lookup(rec, "userIdentity.arn"))
        .ok()
        .flatten()
        .map(str::to_string);
    if actor.is_none() {
        actor = as_string(lookup(rec, "userIdentity.onBehalfOf.userId"))
            .ok()
            .flatten()
            .map(str::to_string);
    }
    // `enrichCtx.actor = $(...)` assigns any type; only strings matter downstream.
    add_fields(
        &mut related,
        rec,
        &[
            "userIdentity.accessKeyId",
            "userIdentity.arn",
            "userIdentity.userName",
            "userIdentity.sessionContext.sessionIssuer.arn",
            "userIdentity.sessionContext.sessionIssuer.userName",
        ],
    )?;
    let user_type = lookup(rec, "userIdentity.type").and_then(Json::as_str);
    if user_type == Some("IdentityCenterUser") {
        add_field(
            &mut related,
            rec,
            "userIdentity.onBehalfOf.identityStoreArn",
        )?;
    }
    add_resource_arns(&mut related, rec)?;

    let source = lookup(rec, "eventSource")
        .and_then(Json::as_str)
        .unwrap_or("");
    let name = lookup(rec, "eventName")
        .and_then(Json::as_str)
        .unwrap_or("");
    enrich(
        rec,
        source,
        name,
        user_type,
        &mut related,
        &mut target,
        &mut actor,
    )?;

    let mut out: EntityFields = Vec::new();
    if !target.is_empty() {
        out.push((
            "target.entity.id",
            target.iter().map(|s| s.0.clone()).collect(),
        ));
        let (mut users, mut hosts, mut services, mut generic) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for t in &target {
            let t = t.0.as_str();
            let mut classified = false;
            if t.starts_with("arn:") {
                let parts: Vec<&str> = t.split(':').collect();
                if parts.len() >= 6 {
                    let rp = parts[5];
                    let rtype = match rp.find('/') {
                        Some(i) if i > 0 => &rp[..i],
                        _ => rp,
                    };
                    classified = true;
                    if t.contains("/AWSServiceRoleFor") || t.contains("/aws-service-role/") {
                        services.push(t.to_string());
                    } else if USER_RESOURCE_TYPES.contains(&rtype) {
                        users.push(t.to_string());
                    } else if HOST_RESOURCE_TYPES.contains(&rtype) {
                        hosts.push(t.to_string());
                    } else if SERVICE_RESOURCE_TYPES.contains(&rtype) || parts[2] == "s3" {
                        services.push(t.to_string());
                    } else {
                        classified = false;
                    }
                }
            } else if t.len() == 20 && t.starts_with("AKIA") {
                users.push(t.to_string());
                classified = true;
            } else if HOST_ID_PREFIXES.iter().any(|p| t.starts_with(p)) {
                hosts.push(t.to_string());
                classified = true;
            } else if SERVICE_ID_PREFIXES.iter().any(|p| t.starts_with(p)) {
                services.push(t.to_string());
                classified = true;
            }
            if !classified {
                generic.push(t.to_string());
            }
        }
        for (field, v) in [
            ("user.target.entity.id", users),
            ("host.target.entity.id", hosts),
            ("service.target.entity.id", services),
            ("entity.target.id", generic),
        ] {
            if !v.is_empty() {
                out.push((field, v));
            }
        }
        related.extend(target);
    }
    if let Some(actor) = actor {
        out.push(("actor.entity.id", vec![actor.clone()]));
        let mut classified = true;
        if user_type == Some("AWSService")
            || actor.contains("/AWSServiceRoleFor")
            || actor.contains("/aws-service-role/")
        {
            out.push(("service.entity.id", vec![actor.clone()]));
        } else if user_type.is_some_and(|t| USER_IDENTITY_TYPES.contains(&t)) {
            out.push(("user.entity.id", vec![actor.clone()]));
        } else {
            classified = false;
        }
        if !classified && actor.starts_with("arn:") {
            let parts: Vec<&str> = actor.split(':').collect();
            if parts.len() >= 6 {
                let rp = parts[5];
                let rtype = match rp.find('/') {
                    Some(i) if i > 0 => &rp[..i],
                    _ => rp,
                };
                if matches!(rtype, "user" | "role" | "assumed-role" | "federated-user") {
                    out.push(("user.entity.id", vec![actor.clone()]));
                    classified = true;
                } else if rtype == "instance" {
                    out.push(("host.entity.id", vec![actor.clone()]));
                    classified = true;
                }
            }
        }
        if !classified && actor.starts_with("i-") {
            out.push(("host.entity.id", vec![actor.clone()]));
            classified = true;
        }
        if !classified {
            out.push(("entity.id", vec![actor]));
        }
    }
    out.push(("related.entity", related.into_iter().map(|s| s.0).collect()));
    Ok(out)
}

// One arm per `enrichX` function of the script, kept in its shape so the two can be compared.
#[allow(clippy::too_many_lines, clippy::collapsible_match)]
fn enrich(
    rec: &Obj,
    source: &str,
    name: &str,
    user_type: Option<&str>,
    related: &mut Set,
    target: &mut Set,
    actor: &mut Option<String>,
) -> Result<(), ScriptFailure> {
    let account = "recipientAccountId";
    match source {
        "cloudformation.amazonaws.com" => match name {
            "CreateStackSet" => add_field(target, rec, "responseElements.stackSetId")?,
            "CreateStack" => add_field(target, rec, "responseElements.stackId")?,
            _ => {}
        },
        "cloudtrail.amazonaws.com" => {
            add_fields(
                related,
                rec,
                &[
                    "requestParameters.name",
                    "requestParameters.s3BucketName",
                    "responseElements.cloudWatchLogsLogGroupArn",
                    "responseElements.cloudWatchLogsRoleArn",
                    "responseElements.kmsKeyId",
                    "responseElements.snsTopicARN",
                    "responseElements.trailARN",
                    "responseElements.name",
                ],
            )?;
            match name {
                "DeleteTrail" | "StopLogging" => add_field(target, rec, "requestParameters.name")?,
                "DescribeTrails" => add_field(target, rec, account)?,
                _ => {}
            }
        }
        "config.amazonaws.com" => {
            add_field(related, rec, "requestParameters.configurationRecorderName")?;
            if matches!(
                name,
                "StopConfigurationRecorder" | "StartConfigurationRecorder"
            ) {
                add_field(target, rec, "requestParameters.configurationRecorderName")?;
            }
        }
        "ec2-instance-connect.amazonaws.com" => {
            if matches!(name, "SendSSHPublicKey" | "SendSerialConsoleSSHPublicKey") {
                add_field(target, rec, "requestParameters.instanceId")?;
            }
        }
        "ec2.amazonaws.com" => enrich_ec2(rec, name, related, target)?,
        "elasticfilesystem.amazonaws.com" => match name {
            "DeleteFileSystem" => add_field(target, rec, "requestParameters.fileSystemId")?,
            "DeleteMountTarget" => add_field(target, rec, "requestParameters.mountTargetId")?,
            _ => {}
        },
        "events.amazonaws.com" => {
            if name == "DeleteRule" {
                add_field(target, rec, "requestParameters.name")?;
            }
        }
        "guardduty.amazonaws.com" => {
            add_fields(
                related,
                rec,
                &[
                    "requestParameters.detectorId",
                    "responseElements.detectorId",
                ],
            )?;
            match name {
                "CreateDetector" => add_field(target, rec, "responseElements.detectorId")?,
                "DeleteDetector" => add_field(target, rec, "requestParameters.detectorId")?,
                _ => {}
            }
        }
        "iam.amazonaws.com" => {
            add_fields(
                related,
                rec,
                &[
                    "requestParameters.userName",
                    "requestParameters.serialNumber",
                    "requestParameters.accessKeyId",
                    "requestParameters.policyArn",
                    "requestParameters.roleName",
                    "requestParameters.policyName",
                    "requestParameters.serialNumber",
                    "responseElements.accessKey.userName",
                    "responseElements.accessKey.accessKeyId",
                    "responseElements.user.arn",
                    "responseElements.user.userId",
                    "responseElements.user.userName",
                    "responseElements.userId",
                    "responseElements.role.arn",
                    "responseElements.serialNumber",
                ],
            )?;
            match name {
                "AttachGroupPolicy" => add_field(target, rec, "requestParameters.groupName")?,
                "AttachRolePolicy" | "ListAttachedRolePolicies" | "UpdateAssumeRolePolicy" => {
                    add_field(target, rec, "requestParameters.roleName")?
                }
                "AttachUserPolicy" => add_fields(
                    target,
                    rec,
                    &["requestParameters.policyArn", "requestParameters.userName"],
                )?,
                "CreateAccessKey" => add_fields(
                    target,
                    rec,
                    &[
                        "responseElements.accessKey.accessKeyId",
                        "requestParameters.userName",
                    ],
                )?,
                "CreateUser" | "DeactivateMFADevice" => {
                    add_field(target, rec, "requestParameters.userName")?
                }
                "DeleteVirtualMFADevice" => {
                    add_field(target, rec, "requestParameters.serialNumber")?
                }
                "GetPolicy" => add_field(target, rec, "requestParameters.policyArn")?,
                "CreatePolicy" => add_field(target, rec, "responseElements.policy.arn")?,
                "ListRoles" | "ListUsers" => add_field(target, rec, account)?,
                _ => {}
            }
        }
        "kms.amazonaws.com" => {
            add_fields(
                related,
                rec,
                &[
                    "requestParameters.keyId",
                    "responseElements.keyId",
                    "responseElements.keyMetadata.arn",
                    "responseElements.keyMetadata.keyId",
                ],
            )?;
            if matches!(name, "DisableKey" | "ScheduleKeyDeletion") {
                add_resource_arns(target, rec)?;
            }
        }
        "lambda.amazonaws.com" => {
            add_fields(
                related,
                rec,
                &[
                    "requestParameters.functionName",
                    "responseElements.functionArn",
                    "responseElements.functionName",
                    "responseElements.role",
                    "responseElements.vpcConfig.securityGroupIds",
                    "responseElements.vpcConfig.subnetIds",
                ],
            )?;
            if name.contains("AddPermission") {
                add_field(target, rec, "requestParameters.functionName")?;
            } else if name.contains("ListFunctions") {
                add_field(target, rec, account)?;
            }
        }
        "logs.amazonaws.com" => match name {
            "DeleteLogGroup" => add_field(target, rec, "requestParameters.logGroupName")?,
            "DeleteLogStream" => add_field(target, rec, "requestParameters.logStreamName")?,
            _ => {}
        },
        "monitoring.amazonaws.com" => {
            if name == "DeleteAlarms" {
                for a in items(rec, "requestParameters.alarmNames")? {
                    add_value(target, as_string(Some(a))?);
                }
            }
        }
        "rds.amazonaws.com" => {
            add_fields(
                related,
                rec,
                &[
                    "requestParameters.dBInstanceIdentifier",
                    "requestParameters.dBInstanceArn",
                    "responseElements.dBInstanceIdentifier",
                    "responseElements.dbInstanceArn",
                    "responseElements.dBSubnetGroup.vpcId",
                    "responseElements.vpcSecurityGroups.vpcSecurityGroupId",
                ],
            )?;
            for i in items(rec, "responseElements.dBSubnetGroup.subnets")? {
                add_value(related, as_string(member(i, "subnetIdentifier"))?);
            }
            for i in items(rec, "responseElements.vpcSecurityGroups")? {
                add_value(related, as_string(member(i, "vpcSecurityGroupId"))?);
            }
            match name {
                "DeleteDBCluster" | "ModifyDBCluster" | "StopDBCluster" => {
                    add_field(target, rec, "responseElements.dBClusterArn")?
                }
                "DeleteDBInstance"
                | "ModifyDBInstance"
                | "RestoreDBInstanceFromDBSnapshot"
                | "RestoreDBInstanceFromS3"
                | "StopDBInstance" => add_field(target, rec, "responseElements.dBInstanceArn")?,
                "DeleteGlobalCluster" => {
                    add_field(target, rec, "responseElements.globalClusterArn")?
                }
                "ModifyDBClusterSnapshotAttribute" => {
                    add_field(target, rec, "responseElements.dBClusterSnapshotIdentifier")?
                }
                "ModifyDBSnapshotAttribute" => {
                    add_field(target, rec, "responseElements.dBSnapshotIdentifier")?
                }
                "DescribeDBInstances" => add_field(target, rec, account)?,
                _ => {}
            }
        }
        "rolesanywhere.amazonaws.com" => {
            if name == "CreateTrustAnchor" {
                add_field(target, rec, "responseElements.trustAnchor.trustAnchorArn")?;
            }
        }
        "route53resolver.amazonaws.com" => {
            if name == "DeleteResolverQueryLogConfig" {
                add_field(target, rec, "responseElements.resolverQueryLogConfig.arn")?;
            }
        }
        "s3.amazonaws.com" => {
            add_field(related, rec, "requestParameters.bucketName")?;
            match name {
                "CopyObject"
                | "PutBucketLogging"
                | "PutBucketVersioning"
                | "PutObject"
                | "GetBucketPolicy"
                | "ListObjects"
                | "HeadObject"
                | "GetObject"
                | "DeleteObject"
                | "DeleteBucket" => add_resource_arns(target, rec)?,
                "PutBucketReplication" => {
                    add_resource_arns(target, rec)?;
                    add_field(
                        target,
                        rec,
                        "requestParameters.ReplicationConfiguration.Rule.Destination.Bucket",
                    )?;
                }
                "ListBuckets" => add_field(target, rec, account)?,
                _ => {}
            }
        }
        "secretsmanager.amazonaws.com" => match name {
            "BatchGetSecretValue" => {
                for s in items(rec, "requestParameters.secretIdList")? {
                    add_value(target, as_string(Some(s))?);
                }
            }
            "GetSecretValue" => add_field(target, rec, "requestParameters.secretId")?,
            _ => {}
        },
        "signin.amazonaws.com" => {
            if name == "ConsoleLogin" {
                add_field(target, rec, account)?;
            }
        }
        "ssm.amazonaws.com" => match name {
            "GetParameter" | "GetParameters" | "CreateControlChannel" | "OpenControlChannel" => {
                add_resource_arns(target, rec)?
            }
            "StartSession" => add_field(target, rec, "requestParameters.target")?,
            "CreateDocument" => add_field(target, rec, "requestParameters.name")?,
            "TerminateSession" | "OpenDataChannel" => {
                add_field(target, rec, "requestParameters.sessionId")?
            }
            "SendCommand" => {
                let mut ids: Vec<Option<&Json>> = items(rec, "requestParameters.instanceIds")?
                    .into_iter()
                    .map(Some)
                    .collect();
                if ids.is_empty() {
                    for t in items(rec, "requestParameters.targets")? {
                        match member(t, "values") {
                            Some(Json::Array(a)) => ids.extend(a.iter().map(Some)),
                            _ => {
                                return Err(ScriptFailure(
                                    "null_pointer_exception: target.values".to_string(),
                                ))
                            }
                        }
                    }
                }
                if ids.len() == 1 && ids[0].and_then(Json::as_str) == Some("*") {
                    ids = vec![lookup(rec, account)];
                }
                add_values(target, &ids)?;
            }
            "ListInstanceAssociations" => add_field(target, rec, account)?,
            _ => {}
        },
        "sts.amazonaws.com" => {
            add_fields(
                related,
                rec,
                &[
                    "requestParameters.roleArn",
                    "sourceIdentity",
                    "additionalEventData.MFAIdentifier",
                    "responseElements.assumedRoleUser.arn",
                    "requestParameters.roleSessionName",
                    "responseElements.accessKeyId",
                ],
            )?;
            let string_at = |p: &str| lookup(rec, p).and_then(Json::as_str).map(str::to_string);
            match name {
                "AssumeRole" => {
                    *actor = match user_type {
                        Some("AWSService") => string_at("userIdentity.invokedBy"),
                        Some("AssumedRole") => {
                            string_at("userIdentity.sessionContext.sessionIssuer.arn")
                        }
                        _ => string_at("userIdentity.arn"),
                    };
                    add_field(target, rec, "requestParameters.roleArn")?;
                }
                "GetCallerIdentity" => {
                    add_field(target, rec, account)?;
                    *actor = string_at("userIdentity.arn");
                }
                _ => {}
            }
        }
        "wafv2.amazonaws.com" => {
            add_fields(
                related,
                rec,
                &["requestParameters.id", "responseElements.summary"],
            )?;
            if matches!(name, "DeleteRuleGroup" | "DeleteWebACL") {
                add_field(target, rec, "requestParameters.id")?;
            }
        }
        "sns.amazonaws.com" => match name {
            "CreateTopic" => add_field(target, rec, "responseElements.topicArn")?,
            "Subscribe" | "Publish" => add_field(target, rec, "requestParameters.topicArn")?,
            _ => {}
        },
        "bedrock.amazonaws.com" => {
            if name == "Converse" {
                add_field(target, rec, "requestParameters.modelId")?;
            }
        }
        "elasticloadbalancing.amazonaws.com" => {
            if name == "DescribeLoadBalancers" {
                add_field(target, rec, account)?;
            }
        }
        "dynamodb.amazonaws.com" => {
            if name == "ListTables" {
                add_field(target, rec, account)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn enrich_ec2(
    rec: &Obj,
    name: &str,
    related: &mut Set,
    target: &mut Set,
) -> Result<(), ScriptFailure> {
    add_fields(
        related,
        rec,
        &[
            "requestParameters.groupId",
            "requestParameters.groupName",
            "requestParameters.roleName",
            "requestParameters.subnetId",
            "requestParameters.volumeId",
            "requestParameters.networkInterfaceId",
            "requestParameters.vpcId",
            "requestParameters.snapshotId",
            "responseElements.groupId",
            "responseElements.reservationId",
            "responseElements.vpc.vpcId",
            "responseElements.vpc.dhcpOptionsId",
            "responseElements.snapshotId",
            "responseElements.volumeId",
        ],
    )?;
    for i in items(rec, "responseElements.securityGroupRuleSet.items")? {
        add_values(
            related,
            &[
                member(i, "groupId"),
                path(i, &["referencedGroupInfo", "groupId"]),
                member(i, "securityGroupRuleId"),
            ],
        )?;
    }
    for p in [
        "responseElements.groupSet.items",
        "requestParameters.groupSet.items",
    ] {
        for i in items(rec, p)? {
            add_value(related, as_string(member(i, "groupId"))?);
        }
    }
    for i in items(rec, "requestParameters.instancesSet.items")? {
        add_value(related, as_string(member(i, "instanceId"))?);
    }
    for inst in items(rec, "responseElements.instancesSet.items")? {
        add_values(
            related,
            &[
                member(inst, "subnetId"),
                member(inst, "vpcId"),
                member(inst, "instanceId"),
                member(inst, "imageId"),
                path(inst, &["iamInstanceProfile", "arn"]),
            ],
        )?;
        let Some(Json::Array(nets)) = path(inst, &["networkInterfaceSet", "items"]) else {
            continue;
        };
        for n in nets {
            add_values(
                related,
                &[
                    member(n, "networkInterfaceId"),
                    member(n, "vpcId"),
                    member(n, "subnetId"),
                ],
            )?;
            if let Some(Json::Array(groups)) = path(n, &["groupSet", "items"]) {
                for g in groups {
                    add_value(related, as_string(member(g, "groupId"))?);
                }
            }
        }
    }
    for i in items(rec, "requestParameters.revokedSecurityGroupRuleSet.items")? {
        add_values(
            related,
            &[member(i, "securityGroupRuleId"), member(i, "groupId")],
        )?;
    }
    let account = "recipientAccountId";
    match name {
        "AuthorizeSecurityGroupIngress" | "AuthorizeSecurityGroupEgress" => {
            add_field(target, rec, "requestParameters.groupId")?;
            for f in items(rec, "responseElements.securityGroupRuleSet.items")? {
                add_value(target, as_string(member(f, "securityGroupRuleId"))?);
            }
        }
        "CreateTrafficMirrorFilter" => add_field(target, rec, "responseElements.CreateTrafficMirrorFilterResponse.trafficMirrorFilter.trafficMirrorFilterId")?,
        "CreateTrafficMirrorFilterRule" => add_field(target, rec, "responseElements.CreateTrafficMirrorFilterRuleResponse.trafficMirrorFilterRule.trafficMirrorFilterRuleId")?,
        "CreateTrafficMirrorSession" => add_field(target, rec, "responseElements.CreateTrafficMirrorSessionResponse.trafficMirrorSession.trafficMirrorSessionId")?,
        "CreateTrafficMirrorTarget" => add_field(target, rec, "responseElements.CreateTrafficMirrorTargetResponse.trafficMirrorTarget.trafficMirrorTargetId")?,
        "DeleteFlowLogs" => add_field(target, rec, "requestParameters.DeleteFlowLogsRequest.FlowLogId.content")?,
        "DeleteNetworkAcl" => add_field(target, rec, "requestParameters.networkAclId")?,
        "DeleteNetworkAclEntry" => {
            add_field(target, rec, "requestParameters.networkAclId")?;
            if let Some(n) = lookup(rec, "requestParameters.ruleNumber") {
                let s = match n {
                    Json::String(s) => s.clone(),
                    other => super::javamap::java_to_string(other),
                };
                add_value(target, Some(&s));
            }
        }
        "GetPasswordData" => add_field(target, rec, "requestParameters.instanceId")?,
        "ModifyImageAttribute" => add_field(target, rec, "requestParameters.imageId")?,
        "ModifySnapshotAttribute" => add_field(target, rec, "requestParameters.snapshotId")?,
        "DescribeSecurityGroups" | "DescribeNetworkInterfaces" | "DescribeRegions"
        | "DescribeVpcs" | "DescribeNetworkAcls" | "DescribeVolumes" => {
            add_field(target, rec, account)?
        }
        _ => {}
    }
    Ok(())
}
