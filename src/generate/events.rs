//! One CloudTrail record from a planned event: the action catalog (which services and API calls
//! each kind of actor makes, and how often), the `userIdentity` block, request parameters and
//! response elements shaped as AWS writes them, errors, user agents and TLS details.

use serde_json::{json, Map, Value};

use super::rng::{derive, Rng};
use super::world::{
    Class, Client, Identity, Principal, World, BROWSERS, DOC_PUBLISHER_ROLE, REGIONS,
};

/// A background API call in the catalog.
#[derive(Debug, Clone, Copy)]
pub struct Action {
    pub source: &'static str,
    pub name: &'static str,
    pub read_only: bool,
    /// Weight for people, workloads and AWS services.
    pub human: u32,
    pub auto: u32,
    pub service: u32,
    /// Logged in us-east-1 whatever region the caller prefers (IAM).
    pub global: bool,
}

const fn a(
    source: &'static str,
    name: &'static str,
    read_only: bool,
    human: u32,
    auto: u32,
    service: u32,
) -> Action {
    Action {
        source,
        name,
        read_only,
        human,
        auto,
        service,
        global: false,
    }
}

const fn g(source: &'static str, name: &'static str, human: u32, auto: u32) -> Action {
    Action {
        source,
        name,
        read_only: true,
        human,
        auto,
        service: 0,
        global: true,
    }
}

/// The background catalog. It never contains `ssm:CreateDocument`, `ssm:SendCommand` or
/// `cloudtrail:StopLogging`: those appear only as planned (injected or look-alike) events, so
/// the alerts the seed rules must raise are known.
pub const CATALOG: &[Action] = &[
    a("ec2.amazonaws.com", "DescribeInstances", true, 60, 50, 20),
    a(
        "ec2.amazonaws.com",
        "DescribeSecurityGroups",
        true,
        25,
        15,
        0,
    ),
    a("ec2.amazonaws.com", "DescribeVpcs", true, 12, 10, 0),
    a("ec2.amazonaws.com", "DescribeSubnets", true, 10, 10, 0),
    a("ec2.amazonaws.com", "DescribeVolumes", true, 10, 12, 0),
    a(
        "ec2.amazonaws.com",
        "DescribeInstanceStatus",
        true,
        8,
        20,
        10,
    ),
    a("ec2.amazonaws.com", "DescribeRegions", true, 6, 6, 0),
    a("ec2.amazonaws.com", "CreateTags", false, 3, 6, 0),
    a("ec2.amazonaws.com", "StartInstances", false, 2, 1, 0),
    a("ec2.amazonaws.com", "StopInstances", false, 2, 1, 0),
    a("s3.amazonaws.com", "ListBuckets", true, 25, 5, 0),
    a("s3.amazonaws.com", "GetBucketLocation", true, 10, 10, 0),
    a("s3.amazonaws.com", "GetBucketAcl", true, 5, 10, 5),
    a("s3.amazonaws.com", "GetObject", true, 20, 60, 0),
    a("s3.amazonaws.com", "PutObject", false, 5, 30, 0),
    a("sts.amazonaws.com", "GetCallerIdentity", true, 30, 40, 0),
    a("sts.amazonaws.com", "AssumeRole", false, 15, 30, 40),
    g("iam.amazonaws.com", "ListUsers", 8, 3),
    g("iam.amazonaws.com", "ListRoles", 10, 5),
    g("iam.amazonaws.com", "GetRole", 8, 10),
    g("iam.amazonaws.com", "GetUser", 6, 2),
    g("iam.amazonaws.com", "ListAttachedRolePolicies", 6, 6),
    g("iam.amazonaws.com", "GetPolicy", 4, 4),
    g("iam.amazonaws.com", "ListPolicies", 4, 2),
    a("kms.amazonaws.com", "Decrypt", true, 15, 60, 40),
    a("kms.amazonaws.com", "GenerateDataKey", true, 5, 30, 30),
    a("kms.amazonaws.com", "DescribeKey", true, 5, 8, 5),
    a("logs.amazonaws.com", "CreateLogStream", false, 0, 25, 10),
    a("logs.amazonaws.com", "DescribeLogGroups", true, 12, 8, 0),
    a("logs.amazonaws.com", "DescribeLogStreams", true, 8, 8, 0),
    a("logs.amazonaws.com", "GetLogEvents", true, 10, 4, 0),
    a(
        "lambda.amazonaws.com",
        "ListFunctions20150331",
        true,
        10,
        4,
        0,
    ),
    a(
        "lambda.amazonaws.com",
        "GetFunction20150331v2",
        true,
        8,
        8,
        0,
    ),
    a(
        "lambda.amazonaws.com",
        "UpdateFunctionCode20150331v2",
        false,
        1,
        3,
        0,
    ),
    a("ssm.amazonaws.com", "GetParameter", true, 10, 50, 0),
    a("ssm.amazonaws.com", "GetParameters", true, 4, 20, 0),
    a("ssm.amazonaws.com", "GetParametersByPath", true, 3, 10, 0),
    a(
        "ssm.amazonaws.com",
        "DescribeInstanceInformation",
        true,
        8,
        6,
        15,
    ),
    a(
        "ssm.amazonaws.com",
        "UpdateInstanceInformation",
        false,
        0,
        20,
        0,
    ),
    a("ssm.amazonaws.com", "ListDocuments", true, 3, 3, 0),
    a("ssm.amazonaws.com", "DescribeDocument", true, 2, 3, 5),
    a("ssm.amazonaws.com", "ListCommandInvocations", true, 2, 2, 0),
    a("cloudtrail.amazonaws.com", "LookupEvents", true, 6, 4, 0),
    a("cloudtrail.amazonaws.com", "DescribeTrails", true, 4, 6, 0),
    a("cloudtrail.amazonaws.com", "GetTrailStatus", true, 3, 6, 0),
    a(
        "cloudtrail.amazonaws.com",
        "GetEventSelectors",
        true,
        2,
        3,
        0,
    ),
    a(
        "secretsmanager.amazonaws.com",
        "GetSecretValue",
        true,
        3,
        25,
        0,
    ),
    a("dynamodb.amazonaws.com", "DescribeTable", true, 4, 10, 0),
    a("ecr.amazonaws.com", "GetAuthorizationToken", true, 2, 15, 0),
];

/// What a planned event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A catalog entry (index into [`CATALOG`]).
    Background(u16),
    ConsoleLogin {
        success: bool,
        mfa: bool,
    },
    /// ssm:CreateDocument; `fail` gives AccessDeniedException.
    CreateDocument {
        command: bool,
        fail: bool,
    },
    /// ssm:SendCommand; `fail` gives AccessDeniedException; `custom` runs [`ATTACK_DOCUMENT`].
    SendCommand {
        fail: bool,
        custom: bool,
    },
    /// cloudtrail:StopLogging / StartLogging; `fail` gives AccessDenied.
    Logging {
        stop: bool,
        fail: bool,
    },
}

/// A planned event: everything needed to render its record later, deterministically.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// Seconds since the epoch.
    pub t: i64,
    pub account: u16,
    pub region: u8,
    pub principal: u32,
    pub kind: Kind,
    /// Drives every random choice of the record.
    pub seed: u64,
    /// Forces a public IP other than the principal's own (an attacker's address), as an index.
    pub foreign_ip: bool,
}

/// The `eventID` the record of `seed` carries.
pub fn event_id(seed: u64) -> String {
    Rng::new(seed).uuid()
}

/// `2026-11-03T14:05:12Z`.
pub fn format_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Proleptic Gregorian date of a day number (days since 1970-01-01), H. Hinnant's algorithm.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn legacy_time(t: i64) -> String {
    // "Nov 3, 2026, 2:17:40 PM" as SSM writes dates in responses.
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    let h = s / 3600;
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!(
        "{} {d}, {y}, {h12}:{:02}:{:02} {ampm}",
        MONTHS[(m - 1) as usize],
        s / 60 % 60,
        s % 60
    )
}

/// Renders the planned event as a CloudTrail record.
pub fn render(world: &World, p: &Planned) -> Value {
    let mut rng = Rng::new(p.seed);
    let event_id = rng.uuid();
    let request_id = rng.uuid();
    let pr = &world.principals[p.principal as usize];
    let account = world.accounts[p.account as usize].as_str();
    let region = REGIONS[p.region as usize].0;
    let ctx = Ctx {
        account,
        region,
        t: p.t,
        pidx: p.principal,
    };

    let (source, name, read_only) = match p.kind {
        Kind::Background(i) => {
            let act = &CATALOG[i as usize];
            (act.source, act.name, act.read_only)
        }
        Kind::ConsoleLogin { .. } => ("signin.amazonaws.com", "ConsoleLogin", false),
        Kind::CreateDocument { .. } => ("ssm.amazonaws.com", "CreateDocument", false),
        Kind::SendCommand { .. } => ("ssm.amazonaws.com", "SendCommand", false),
        Kind::Logging { stop: true, .. } => ("cloudtrail.amazonaws.com", "StopLogging", false),
        Kind::Logging { stop: false, .. } => ("cloudtrail.amazonaws.com", "StartLogging", false),
    };
    let console_login = matches!(p.kind, Kind::ConsoleLogin { .. });
    let via_console = pr.client == Client::Console;

    let mut r = Map::new();
    r.insert(
        "eventVersion".into(),
        Value::from(if rng.chance(0.7) { "1.08" } else { "1.09" }),
    );
    r.insert(
        "userIdentity".into(),
        user_identity(pr, &ctx, console_login, &mut rng),
    );
    r.insert("eventTime".into(), Value::from(format_time(p.t)));
    r.insert("eventSource".into(), Value::from(source));
    r.insert("eventName".into(), Value::from(name));
    r.insert("awsRegion".into(), Value::from(region));
    let ip = if p.foreign_ip {
        // An address this principal never used: a VPS provider range.
        let mut ip_rng = Rng::new(derive(p.seed, 0x1b));
        super::world::public_ip(&mut ip_rng, &[45, 91, 185, 194])
    } else if pr.class == Class::Automation && rng.chance(0.3) {
        // Workloads calling from inside a VPC through an endpoint or NAT.
        format!(
            "10.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            rng.range(1, 254)
        )
    } else {
        pr.ip.clone()
    };
    r.insert("sourceIPAddress".into(), Value::from(ip));
    let agent = user_agent(pr, source, name, console_login, &mut rng);
    r.insert("userAgent".into(), Value::from(agent));

    let error = match p.kind {
        Kind::Background(_) => background_error(pr, &mut rng),
        Kind::ConsoleLogin { success, .. } => (!success).then_some(ErrorKind::LoginFailed),
        Kind::CreateDocument { fail, .. }
        | Kind::SendCommand { fail, .. }
        | Kind::Logging { fail, .. } => fail.then_some(ErrorKind::Denied),
    };
    if let Some(e) = error {
        if e != ErrorKind::LoginFailed {
            let (code, message) = error_text(e, source, name, pr, &ctx);
            r.insert("errorCode".into(), Value::from(code));
            r.insert("errorMessage".into(), Value::from(message));
        } else {
            r.insert("errorMessage".into(), Value::from("Failed authentication"));
        }
    }

    let (request, response) = match p.kind {
        Kind::Background(_) => shapes(source, name, &ctx, &mut rng),
        Kind::ConsoleLogin { success, .. } => (
            Value::Null,
            json!({ "ConsoleLogin": if success { "Success" } else { "Failure" } }),
        ),
        Kind::CreateDocument { command, .. } => {
            let publisher = matches!(&pr.identity, Identity::AssumedRole { role, .. } if role == DOC_PUBLISHER_ROLE);
            create_document(&ctx, command, publisher, &mut rng)
        }
        Kind::SendCommand { custom, .. } => send_command(&ctx, custom, &mut rng),
        Kind::Logging { .. } => (
            json!({ "name": format!("arn:aws:cloudtrail:us-east-1:{account}:trail/org-management-trail") }),
            Value::Null,
        ),
    };
    r.insert("requestParameters".into(), request);
    let response = if error.is_some() && !console_login {
        Value::Null
    } else {
        response
    };
    r.insert("responseElements".into(), response);
    if let Kind::ConsoleLogin { mfa, .. } = p.kind {
        r.insert(
            "additionalEventData".into(),
            json!({
                "LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true",
                "MobileVersion": "No",
                "MFAUsed": if mfa { "Yes" } else { "No" },
            }),
        );
    } else {
        r.insert("requestID".into(), Value::from(request_id));
    }
    r.insert("eventID".into(), Value::from(event_id));
    r.insert("readOnly".into(), Value::from(read_only));
    let data_event = source == "s3.amazonaws.com" && matches!(name, "GetObject" | "PutObject");
    if data_event {
        let (bucket, key) = s3_object(&ctx, &mut rng);
        r.insert(
            "resources".into(),
            json!([
                { "type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{bucket}/{key}") },
                { "accountId": account, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}") },
            ]),
        );
    }
    r.insert(
        "eventType".into(),
        Value::from(if console_login {
            "AwsConsoleSignIn"
        } else {
            "AwsApiCall"
        }),
    );
    r.insert("managementEvent".into(), Value::from(!data_event));
    r.insert("recipientAccountId".into(), Value::from(account));
    r.insert(
        "eventCategory".into(),
        Value::from(if data_event { "Data" } else { "Management" }),
    );
    let tls = !console_login && pr.class != Class::Service;
    if tls {
        let service = source.trim_end_matches(".amazonaws.com");
        let host = match service {
            "iam" => "iam.amazonaws.com".to_owned(),
            "s3" => format!("{}.s3.{region}.amazonaws.com", s3_bucket(&ctx, 0)),
            _ => format!("{service}.{region}.amazonaws.com"),
        };
        let (version, suite) = if rng.chance(0.8) {
            ("TLSv1.3", "TLS_AES_128_GCM_SHA256")
        } else {
            ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
        };
        r.insert(
            "tlsDetails".into(),
            json!({ "tlsVersion": version, "cipherSuite": suite, "clientProvidedHostHeader": host }),
        );
    }
    if via_console && !console_login {
        r.insert("sessionCredentialFromConsole".into(), Value::from("true"));
    }
    Value::Object(r)
}

struct Ctx<'a> {
    account: &'a str,
    region: &'a str,
    t: i64,
    pidx: u32,
}

/// Session name and temporary key of a principal's session: one per day for people, one per
/// hour for workloads, so consecutive calls share a session as in real trails.
fn session(pr: &Principal, ctx: &Ctx<'_>) -> (String, String, i64) {
    let period = if pr.class == Class::Human {
        86_400
    } else {
        3600
    };
    let start = ctx.t - ctx.t.rem_euclid(period);
    let mut srng = Rng::new(derive(u64::from(ctx.pidx), start as u64));
    let created = ctx.t - srng.range(0, (ctx.t - start).max(0) as u64) as i64;
    let key = format!("ASIA{}", srng.upper_alnum(16));
    let name = match &pr.identity {
        Identity::AssumedRole {
            session: Some(s), ..
        } => s.clone(),
        Identity::AssumedRole { role, .. } if role.contains("ec2") || role.contains("eks") => {
            format!("i-0{}", srng.hex(16))
        }
        Identity::AssumedRole { role, .. } if role.contains("github") => {
            format!("GitHubActions-{}", srng.range(1_000_000_000, 9_999_999_999))
        }
        _ => format!("botocore-session-{start}"),
    };
    (name, key, created)
}

fn user_identity(pr: &Principal, ctx: &Ctx<'_>, console_login: bool, rng: &mut Rng) -> Value {
    let account = ctx.account;
    match &pr.identity {
        Identity::IamUser {
            name,
            principal_id,
            access_key,
        } => {
            let mut m = Map::new();
            m.insert("type".into(), Value::from("IAMUser"));
            m.insert("principalId".into(), Value::from(principal_id.as_str()));
            m.insert(
                "arn".into(),
                Value::from(format!("arn:aws:iam::{account}:user/{name}")),
            );
            m.insert("accountId".into(), Value::from(account));
            if console_login {
                m.insert("userName".into(), Value::from(name.as_str()));
                return Value::Object(m);
            }
            if pr.client == Client::Console {
                let (_, key, created) = session(pr, ctx);
                m.insert("accessKeyId".into(), Value::from(key));
                m.insert("userName".into(), Value::from(name.as_str()));
                m.insert(
                    "sessionContext".into(),
                    json!({
                        "sessionIssuer": {},
                        "webIdFederationData": {},
                        "attributes": { "creationDate": format_time(created), "mfaAuthenticated": "true" },
                    }),
                );
            } else {
                m.insert("accessKeyId".into(), Value::from(access_key.as_str()));
                m.insert("userName".into(), Value::from(name.as_str()));
            }
            Value::Object(m)
        }
        Identity::AssumedRole {
            role,
            path,
            role_id,
            ..
        } => {
            let (session_name, key, created) = session(pr, ctx);
            let mut m = Map::new();
            m.insert("type".into(), Value::from("AssumedRole"));
            m.insert(
                "principalId".into(),
                Value::from(format!("{role_id}:{session_name}")),
            );
            m.insert(
                "arn".into(),
                Value::from(format!(
                    "arn:aws:sts::{account}:assumed-role/{role}/{session_name}"
                )),
            );
            m.insert("accountId".into(), Value::from(account));
            m.insert("accessKeyId".into(), Value::from(key));
            m.insert(
                "sessionContext".into(),
                json!({
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": role_id,
                        "arn": format!("arn:aws:iam::{account}:role{path}{role}"),
                        "accountId": account,
                        "userName": role,
                    },
                    "webIdFederationData": {},
                    "attributes": {
                        "creationDate": format_time(created),
                        "mfaAuthenticated": "false",
                    },
                }),
            );
            if pr.class == Class::Service {
                m.insert("invokedBy".into(), Value::from(pr.ip.as_str()));
            }
            Value::Object(m)
        }
        Identity::AwsService { service } => json!({ "type": "AWSService", "invokedBy": service }),
        Identity::Root => {
            let mut m = Map::new();
            m.insert("type".into(), Value::from("Root"));
            m.insert("principalId".into(), Value::from(account));
            m.insert(
                "arn".into(),
                Value::from(format!("arn:aws:iam::{account}:root")),
            );
            m.insert("accountId".into(), Value::from(account));
            if !console_login {
                m.insert(
                    "accessKeyId".into(),
                    Value::from(format!("ASIA{}", rng.upper_alnum(16))),
                );
                m.insert(
                    "sessionContext".into(),
                    json!({
                        "sessionIssuer": {},
                        "webIdFederationData": {},
                        "attributes": { "creationDate": format_time(ctx.t - 600), "mfaAuthenticated": "true" },
                    }),
                );
            }
            Value::Object(m)
        }
    }
}

/// `DescribeInstances` → `describe-instances`, as the CLI names its commands.
fn kebab(name: &str) -> String {
    let base = name
        .trim_end_matches("20150331v2")
        .trim_end_matches("20150331");
    let mut out = String::with_capacity(base.len() + 4);
    for (i, c) in base.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn user_agent(
    pr: &Principal,
    source: &str,
    name: &str,
    console_login: bool,
    rng: &mut Rng,
) -> String {
    if console_login {
        return (*rng.pick(BROWSERS)).to_owned();
    }
    match pr.client {
        Client::AwsCli => format!(
            "{} md/command#{}.{}",
            pr.agent,
            source.trim_end_matches(".amazonaws.com"),
            kebab(name)
        ),
        Client::Console if source == "s3.amazonaws.com" => {
            "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.750 Linux/5.10.226-192.879.amzn2int.x86_64 OpenJDK_64-Bit_Server_VM/25.412-b09 java/1.8.0_412 vendor/Oracle_Corporation cfg/retry-mode/standard]".to_owned()
        }
        Client::Console if rng.chance(0.3) => "AWS Internal".to_owned(),
        _ => pr.agent.clone(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Denied,
    Throttled,
    NotFound,
    LoginFailed,
}

fn background_error(pr: &Principal, rng: &mut Rng) -> Option<ErrorKind> {
    let p = match pr.class {
        Class::Human => 0.045,
        Class::Automation => 0.02,
        Class::Service | Class::Root => 0.003,
    };
    if !rng.chance(p) {
        return None;
    }
    Some(match rng.below(10) {
        0..=6 => ErrorKind::Denied,
        7 | 8 => ErrorKind::Throttled,
        _ => ErrorKind::NotFound,
    })
}

fn caller_arn(pr: &Principal, ctx: &Ctx<'_>) -> String {
    let account = ctx.account;
    match &pr.identity {
        Identity::IamUser { name, .. } => format!("arn:aws:iam::{account}:user/{name}"),
        Identity::AssumedRole { role, .. } => {
            let (s, _, _) = session(pr, ctx);
            format!("arn:aws:sts::{account}:assumed-role/{role}/{s}")
        }
        Identity::AwsService { service } => service.clone(),
        Identity::Root => format!("arn:aws:iam::{account}:root"),
    }
}

fn error_text(
    e: ErrorKind,
    source: &str,
    name: &str,
    pr: &Principal,
    ctx: &Ctx<'_>,
) -> (String, String) {
    let service = source.trim_end_matches(".amazonaws.com");
    let arn = caller_arn(pr, ctx);
    match e {
        ErrorKind::Throttled => (
            if service == "ec2" {
                "Client.RequestLimitExceeded"
            } else {
                "ThrottlingException"
            }
            .to_owned(),
            "Rate exceeded".to_owned(),
        ),
        ErrorKind::NotFound => match service {
            "ssm" => ("ParameterNotFound".to_owned(), String::new()),
            "s3" => (
                "NoSuchKey".to_owned(),
                "The specified key does not exist.".to_owned(),
            ),
            "iam" => (
                "NoSuchEntityException".to_owned(),
                "The role with name legacy-deployer cannot be found.".to_owned(),
            ),
            _ => (
                "ResourceNotFoundException".to_owned(),
                "The specified resource does not exist.".to_owned(),
            ),
        },
        ErrorKind::Denied | ErrorKind::LoginFailed => {
            let message = format!(
                "User: {arn} is not authorized to perform: {service}:{name} because no identity-based policy allows the {service}:{name} action"
            );
            match service {
                "ec2" => (
                    "Client.UnauthorizedOperation".to_owned(),
                    format!("You are not authorized to perform this operation. {message}"),
                ),
                "s3" => ("AccessDenied".to_owned(), "Access Denied".to_owned()),
                "iam" | "sts" | "cloudtrail" => ("AccessDenied".to_owned(), message),
                _ => ("AccessDeniedException".to_owned(), message),
            }
        }
    }
}

fn s3_bucket(ctx: &Ctx<'_>, i: u64) -> String {
    const KINDS: [&str; 6] = [
        "app-assets",
        "data-lake-raw",
        "terraform-state",
        "backups",
        "reports",
        "access-logs",
    ];
    format!(
        "{}-{}-{}",
        KINDS[(i % 6) as usize],
        &ctx.account[8..],
        ctx.region
    )
}

fn s3_object(ctx: &Ctx<'_>, rng: &mut Rng) -> (String, String) {
    let bucket = s3_bucket(ctx, rng.below(6));
    let key = match rng.below(4) {
        0 => format!("uploads/{}/{}.jpg", rng.range(1000, 99_999), rng.hex(12)),
        1 => format!(
            "raw/dt={}/part-{:05}.parquet",
            &format_time(ctx.t)[..10],
            rng.below(200)
        ),
        2 => format!("reports/daily/{}.csv", &format_time(ctx.t)[..10]),
        _ => "env/prod/terraform.tfstate".to_owned(),
    };
    (bucket, key)
}

fn instance_id(rng: &mut Rng) -> String {
    format!("i-0{}", rng.hex(16))
}

/// One of four keys per account, stable across events.
fn kms_key(ctx: &Ctx<'_>, rng: &mut Rng) -> String {
    let account_num: u64 = ctx.account.parse().unwrap_or(0);
    let key = Rng::new(derive(account_num, rng.below(4))).uuid();
    format!("arn:aws:kms:{}:{}:key/{key}", ctx.region, ctx.account)
}

fn role_name(rng: &mut Rng) -> &'static str {
    const ROLES: [&str; 7] = [
        "github-actions-deploy",
        "terraform-ci",
        "orders-processor-lambda",
        "billing-ecs-task",
        "backup-automation",
        "cross-account-audit",
        "OrganizationAccountAccessRole",
    ];
    ROLES[rng.below(ROLES.len() as u64) as usize]
}

/// Request parameters and response elements of a catalog call.
fn shapes(source: &str, name: &str, ctx: &Ctx<'_>, rng: &mut Rng) -> (Value, Value) {
    let account = ctx.account;
    let region = ctx.region;
    match (source, name) {
        ("ec2.amazonaws.com", "DescribeInstances") => {
            let ids: Vec<String> = (0..rng.range(0, 2)).map(|_| instance_id(rng)).collect();
            let req = if ids.is_empty() {
                json!({ "instancesSet": {}, "filterSet": { "items": [ { "name": "instance-state-name", "valueSet": { "items": [ { "value": "running" } ] } } ] } })
            } else {
                json!({ "instancesSet": { "items": ids.iter().map(|i| json!({ "instanceId": i })).collect::<Vec<_>>() }, "filterSet": {} })
            };
            (req, Value::Null)
        }
        ("ec2.amazonaws.com", "DescribeSecurityGroups") => (
            json!({ "securityGroupSet": {}, "securityGroupIdSet": {}, "filterSet": { "items": [ { "name": "vpc-id", "valueSet": { "items": [ { "value": format!("vpc-0{}", rng.hex(16)) } ] } } ] } }),
            Value::Null,
        ),
        ("ec2.amazonaws.com", "DescribeVpcs") => {
            (json!({ "vpcSet": {}, "filterSet": {} }), Value::Null)
        }
        ("ec2.amazonaws.com", "DescribeSubnets") => (
            json!({ "subnetSet": {}, "filterSet": { "items": [ { "name": "vpc-id", "valueSet": { "items": [ { "value": format!("vpc-0{}", rng.hex(16)) } ] } } ] } }),
            Value::Null,
        ),
        ("ec2.amazonaws.com", "DescribeVolumes") => (
            json!({ "volumeSet": {}, "filterSet": { "items": [ { "name": "attachment.instance-id", "valueSet": { "items": [ { "value": instance_id(rng) } ] } } ] } }),
            Value::Null,
        ),
        ("ec2.amazonaws.com", "DescribeInstanceStatus") => (
            json!({ "instancesSet": {}, "filterSet": {}, "includeAllInstances": rng.chance(0.5) }),
            Value::Null,
        ),
        ("ec2.amazonaws.com", "DescribeRegions") => {
            (json!({ "regionSet": {}, "allRegions": false }), Value::Null)
        }
        ("ec2.amazonaws.com", "CreateTags") => {
            let id = instance_id(rng);
            let v = *rng.pick(&["prod", "staging", "dev"]);
            (
                json!({ "resourcesSet": { "items": [ { "resourceId": id } ] }, "tagSet": { "items": [ { "key": "environment", "value": v } ] } }),
                json!({ "requestId": rng.uuid(), "_return": true }),
            )
        }
        ("ec2.amazonaws.com", "StartInstances") | ("ec2.amazonaws.com", "StopInstances") => {
            let id = instance_id(rng);
            let start = name == "StartInstances";
            let (from, to) = if start {
                ((80, "stopped"), (0, "pending"))
            } else {
                ((16, "running"), (64, "stopping"))
            };
            (
                json!({ "instancesSet": { "items": [ { "instanceId": id } ] } }),
                json!({ "requestId": rng.uuid(), "instancesSet": { "items": [ {
                    "instanceId": id,
                    "currentState": { "code": to.0, "name": to.1 },
                    "previousState": { "code": from.0, "name": from.1 },
                } ] } }),
            )
        }
        ("s3.amazonaws.com", "ListBuckets") => (json!({ "Host": "s3.amazonaws.com" }), Value::Null),
        ("s3.amazonaws.com", "GetBucketLocation") => (
            json!({ "bucketName": s3_bucket(ctx, rng.below(6)), "Host": format!("s3.{region}.amazonaws.com"), "location": "" }),
            Value::Null,
        ),
        ("s3.amazonaws.com", "GetBucketAcl") => (
            json!({ "bucketName": s3_bucket(ctx, rng.below(6)), "Host": format!("s3.{region}.amazonaws.com"), "acl": "" }),
            Value::Null,
        ),
        ("s3.amazonaws.com", "GetObject") | ("s3.amazonaws.com", "PutObject") => {
            let (bucket, key) = s3_object(ctx, rng);
            (
                json!({ "bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com"), "key": key }),
                Value::Null,
            )
        }
        ("sts.amazonaws.com", "GetCallerIdentity") => (Value::Null, Value::Null),
        ("sts.amazonaws.com", "AssumeRole") => {
            let role = role_name(rng);
            let session = format!("botocore-session-{}", ctx.t - rng.range(0, 5) as i64);
            let key = format!("ASIA{}", rng.upper_alnum(16));
            let role_id = format!("AROA{}", rng.upper_alnum(17));
            (
                json!({
                    "roleArn": format!("arn:aws:iam::{account}:role/{role}"),
                    "roleSessionName": session,
                    "durationSeconds": 3600,
                }),
                json!({
                    "credentials": {
                        "accessKeyId": key,
                        "sessionToken": format!("IQoJb3JpZ2luX2VjE{}", rng.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+", 40)),
                        "expiration": legacy_time(ctx.t + 3600),
                    },
                    "assumedRoleUser": {
                        "assumedRoleId": format!("{role_id}:{session}"),
                        "arn": format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),
                    },
                }),
            )
        }
        ("iam.amazonaws.com", "GetRole") | ("iam.amazonaws.com", "ListAttachedRolePolicies") => {
            (json!({ "roleName": role_name(rng) }), Value::Null)
        }
        ("iam.amazonaws.com", "GetUser") => (
            json!({ "userName": format!("svc-{}", rng.pick(&["reporting", "ci", "backup", "grafana"])) }),
            Value::Null,
        ),
        ("iam.amazonaws.com", "GetPolicy") => (
            json!({ "policyArn": format!("arn:aws:iam::{account}:policy/{}", rng.pick(&["ci-deploy-policy", "read-reports", "s3-backup-writer"])) }),
            Value::Null,
        ),
        ("iam.amazonaws.com", _) => (json!({ "maxItems": 100 }), Value::Null),
        ("kms.amazonaws.com", "Decrypt") => (
            json!({ "encryptionAlgorithm": "SYMMETRIC_DEFAULT", "encryptionContext": { "aws:s3:arn": format!("arn:aws:s3:::{}", s3_bucket(ctx, rng.below(6))) } }),
            Value::Null,
        ),
        ("kms.amazonaws.com", "GenerateDataKey") => (
            json!({ "keyId": kms_key(ctx, rng), "keySpec": "AES_256", "encryptionContext": { "aws:s3:arn": format!("arn:aws:s3:::{}", s3_bucket(ctx, rng.below(6))) } }),
            Value::Null,
        ),
        ("kms.amazonaws.com", _) => (json!({ "keyId": kms_key(ctx, rng) }), Value::Null),
        ("logs.amazonaws.com", "CreateLogStream") => (
            json!({ "logGroupName": format!("/aws/lambda/{}", rng.pick(&["orders-processor", "image-resizer", "cost-report"])), "logStreamName": format!("{}/[$LATEST]{}", &format_time(ctx.t)[..10].replace('-', "/"), rng.hex(32)) }),
            Value::Null,
        ),
        ("logs.amazonaws.com", "GetLogEvents") | ("logs.amazonaws.com", "DescribeLogStreams") => (
            json!({ "logGroupName": format!("/aws/lambda/{}", rng.pick(&["orders-processor", "image-resizer", "cost-report"])), "limit": 50 }),
            Value::Null,
        ),
        ("logs.amazonaws.com", _) => (json!({ "limit": 50 }), Value::Null),
        ("lambda.amazonaws.com", "ListFunctions20150331") => (Value::Null, Value::Null),
        ("lambda.amazonaws.com", "GetFunction20150331v2") => (
            json!({ "functionName": rng.pick(&["orders-processor", "image-resizer", "cost-report"]) }),
            Value::Null,
        ),
        ("lambda.amazonaws.com", _) => {
            let f = *rng.pick(&["orders-processor", "image-resizer", "cost-report"]);
            (
                json!({ "functionName": f, "publish": false, "dryRun": false }),
                json!({ "functionName": f, "functionArn": format!("arn:aws:lambda:{region}:{account}:function:{f}"), "runtime": "python3.12", "codeSize": rng.range(2000, 9_000_000), "lastModified": format_time(ctx.t).replace('Z', ".000+0000"), "state": "Active" }),
            )
        }
        ("ssm.amazonaws.com", "GetParameter") => (
            json!({ "name": format!("/{}/{}", rng.pick(&["prod", "staging"]), rng.pick(&["db/host", "db/password", "api/key", "feature-flags"])), "withDecryption": rng.chance(0.5) }),
            Value::Null,
        ),
        ("ssm.amazonaws.com", "GetParameters") => (
            json!({ "names": ["/prod/db/host", "/prod/db/port"], "withDecryption": false }),
            Value::Null,
        ),
        ("ssm.amazonaws.com", "GetParametersByPath") => (
            json!({ "path": format!("/{}/", rng.pick(&["prod", "staging"])), "recursive": true, "withDecryption": true }),
            Value::Null,
        ),
        ("ssm.amazonaws.com", "UpdateInstanceInformation") => (
            json!({ "instanceId": instance_id(rng), "agentVersion": "3.3.1142.0", "agentName": "amazon-ssm-agent", "platformType": "Linux", "platformName": "Amazon Linux", "platformVersion": "2023", "iPAddress": format!("10.{}.{}.{}", rng.below(256), rng.below(256), rng.range(1, 254)), "computerName": format!("ip-10-0-{}-{}.ec2.internal", rng.below(256), rng.range(1, 254)) }),
            Value::Null,
        ),
        ("ssm.amazonaws.com", "DescribeDocument") => (
            json!({ "name": rng.pick(&["AWS-RunPatchBaseline", "AWS-RunShellScript", "AWS-GatherSoftwareInventory"]) }),
            Value::Null,
        ),
        ("ssm.amazonaws.com", "ListCommandInvocations") => (
            json!({ "details": true, "commandId": rng.uuid() }),
            Value::Null,
        ),
        ("ssm.amazonaws.com", _) => (json!({ "maxResults": 50 }), Value::Null),
        ("cloudtrail.amazonaws.com", "LookupEvents") => (
            json!({ "startTime": legacy_time(ctx.t - 86_400), "endTime": legacy_time(ctx.t), "maxResults": 50, "lookupAttributes": [ { "attributeKey": "EventName", "attributeValue": rng.pick(&["ConsoleLogin", "RunInstances", "AssumeRole"]) } ] }),
            Value::Null,
        ),
        ("cloudtrail.amazonaws.com", "GetTrailStatus")
        | ("cloudtrail.amazonaws.com", "GetEventSelectors") => (
            json!({ "name": format!("arn:aws:cloudtrail:us-east-1:{account}:trail/org-management-trail") }),
            Value::Null,
        ),
        ("cloudtrail.amazonaws.com", _) => (json!({ "includeShadowTrails": true }), Value::Null),
        ("secretsmanager.amazonaws.com", _) => (
            json!({ "secretId": format!("arn:aws:secretsmanager:{region}:{account}:secret:prod/{}-{}", rng.pick(&["payments/stripe", "db/orders", "grafana/admin"]), rng.chars(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 6)) }),
            Value::Null,
        ),
        ("dynamodb.amazonaws.com", _) => (
            json!({ "tableName": rng.pick(&["orders", "sessions", "feature-flags", "terraform-locks"]) }),
            Value::Null,
        ),
        _ => (Value::Null, Value::Null),
    }
}

fn create_document(ctx: &Ctx<'_>, command: bool, publisher: bool, rng: &mut Rng) -> (Value, Value) {
    let name = match (command, publisher) {
        // The publisher's names follow a daily pattern; anyone else writes a bespoke document.
        (true, true) => format!(
            "{}-{}",
            rng.pick(&[
                "Platform-PatchHelper",
                "Platform-RotateLogs",
                "Platform-CollectDiagnostics"
            ]),
            &format_time(ctx.t)[..10].replace('-', "")
        ),
        (true, false) => ATTACK_DOCUMENT.to_owned(),
        (false, _) => "Ops-RestartService-Automation".to_owned(),
    };
    let (doc_type, schema) = if command {
        ("Command", "2.2")
    } else {
        ("Automation", "0.3")
    };
    let hash = format!("{}{}", rng.hex(32), rng.hex(32));
    (
        json!({
            "content": "HIDDEN_DUE_TO_SECURITY_REASONS",
            "name": name,
            "documentType": doc_type,
            "documentFormat": "YAML",
        }),
        json!({
            "documentDescription": {
                "hash": hash,
                "hashType": "Sha256",
                "name": name,
                "owner": ctx.account,
                "createdDate": legacy_time(ctx.t),
                "status": "Creating",
                "documentVersion": "1",
                "platformTypes": ["Linux", "MacOS"],
                "documentType": doc_type,
                "schemaVersion": schema,
                "latestVersion": "1",
                "defaultVersion": "1",
                "documentFormat": "YAML",
                "tags": [],
                "documentId": rng.uuid(),
            }
        }),
    )
}

/// Name of the document an injected actor creates and then runs.
pub const ATTACK_DOCUMENT: &str = "SysDiag-Collector";

fn send_command(ctx: &Ctx<'_>, custom: bool, rng: &mut Rng) -> (Value, Value) {
    let ids: Vec<String> = (0..rng.range(1, 3)).map(|_| instance_id(rng)).collect();
    let document = if custom {
        ATTACK_DOCUMENT
    } else {
        "AWS-RunShellScript"
    };
    let command_id = rng.uuid();
    (
        json!({
            "instanceIds": ids,
            "documentName": document,
            "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS",
            "interactive": false,
        }),
        json!({ "command": {
            "commandId": command_id,
            "documentName": document,
            "documentVersion": "$DEFAULT",
            "comment": "",
            "expiresAfter": legacy_time(ctx.t + 7200),
            "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS",
            "instanceIds": ids,
            "targets": [],
            "requestedDateTime": legacy_time(ctx.t),
            "status": "Pending",
            "statusDetails": "Pending",
            "outputS3Region": ctx.region,
            "outputS3BucketName": "",
            "outputS3KeyPrefix": "",
            "maxConcurrency": "50",
            "maxErrors": "0",
            "targetCount": ids.len(),
            "completedCount": 0,
            "errorCount": 0,
            "deliveryTimedOutCount": 0,
            "serviceRole": "",
            "notificationConfig": { "notificationArn": "", "notificationEvents": [], "notificationType": "" },
            "cloudWatchOutputConfig": { "cloudWatchLogGroupName": "", "cloudWatchOutputEnabled": false },
            "interactive": false,
            "timeoutSeconds": 3600,
            "clientName": "",
            "clientSourceId": "",
            "triggeredAlarms": [],
            "hasSendCommandSignature": false,
            "hasCancelCommandSignature": false,
        } }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formats_match_cloudtrail() {
        // 2026-11-03T14:05:09Z
        let t = 1_793_714_709;
        assert_eq!(format_time(t), "2026-11-03T14:05:09Z");
        assert_eq!(legacy_time(t), "Nov 3, 2026, 2:05:09 PM");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn cli_command_names_are_kebab_case() {
        assert_eq!(kebab("DescribeInstances"), "describe-instances");
        assert_eq!(kebab("ListFunctions20150331"), "list-functions");
    }

    #[test]
    fn catalog_holds_no_seed_rule_action() {
        for act in CATALOG {
            assert!(
                !matches!(act.name, "CreateDocument" | "SendCommand" | "StopLogging"),
                "{} must only be planned explicitly",
                act.name
            );
        }
    }
}
