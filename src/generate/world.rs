//! The simulated organisation: AWS accounts, the people and workloads acting in them (IAM users,
//! assumed-role sessions, AWS services, root), their time zones, addresses and client software.
//! Built once from the seed; every event picks its actor from here.

use super::rng::Rng;

/// Regions used, with the weight a principal's home region is drawn with.
pub const REGIONS: &[(&str, u32)] = &[
    ("us-east-1", 60),
    ("eu-west-1", 20),
    ("us-west-2", 15),
    ("eu-central-1", 5),
];

/// Index of `us-east-1`, where global services (IAM, sign-in) log.
pub const GLOBAL_REGION: u8 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A person: working hours in their time zone, quiet weekends.
    Human,
    /// A workload (CI, Lambda, instance role): around the clock, bursts on the hour.
    Automation,
    /// An AWS service acting for the account (`AWSService` identity or a service-linked role).
    Service,
    /// The account root user.
    Root,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Console,
    AwsCli,
    Boto3,
    Terraform,
    /// Calls made by an AWS service on the principal's behalf (user agent = service host).
    Service,
}

#[derive(Debug, Clone)]
pub enum Identity {
    IamUser {
        name: String,
        principal_id: String,
        access_key: String,
    },
    AssumedRole {
        role: String,
        path: String,
        role_id: String,
        /// Fixed session name (Lambda function, SSO e-mail); `None`: a fresh one per session.
        session: Option<String>,
    },
    AwsService {
        service: String,
    },
    Root,
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub class: Class,
    pub account: u16,
    pub identity: Identity,
    /// Minutes east of UTC.
    pub tz_minutes: i32,
    pub ip: String,
    pub client: Client,
    /// Fixed part of the user agent (client version, OS).
    pub agent: String,
    pub home_region: u8,
    /// Relative activity.
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct World {
    pub accounts: Vec<String>,
    pub principals: Vec<Principal>,
    /// Per account, the index of the Lambda role that publishes SSM command documents daily.
    pub doc_publisher: Vec<usize>,
}

const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yusuf", "amara",
    "bilal", "chen", "dmitri", "elena", "farah", "goran", "hiro", "ines", "jonas", "kavya",
    "lucas", "mei", "noor", "oskar", "priya", "quentin", "rosa", "sanjay", "tomasz",
];
const LAST: &[&str] = &[
    "smith",
    "garcia",
    "muller",
    "rossi",
    "nakamura",
    "kowalski",
    "silva",
    "okafor",
    "johansson",
    "dubois",
    "patel",
    "kim",
    "novak",
    "fischer",
    "lopez",
    "haddad",
    "ivanova",
    "obrien",
    "tanaka",
    "schmidt",
    "moreau",
    "costa",
    "nguyen",
    "berg",
    "wright",
    "kaur",
    "fernandes",
    "yilmaz",
];
/// Time zones of the people (minutes east of UTC) with weights.
const ZONES: &[(i32, u32)] = &[
    (-480, 20),
    (-300, 30),
    (0, 15),
    (60, 20),
    (120, 5),
    (330, 10),
];
const AUTOMATION_ROLES: &[&str] = &[
    "github-actions-deploy",
    "terraform-ci",
    "orders-processor-lambda",
    "billing-ecs-task",
    "eks-nodegroup-workers",
    "backup-automation",
    "datadog-integration",
    "cost-report-exporter",
    "image-resizer-lambda",
    "etl-glue-jobs",
    "ec2-ssm-instance-profile",
    "log-shipper",
    "payments-api-task",
    "search-indexer",
    "nightly-db-snapshot",
    "security-audit-scanner",
];
const SSO_ROLES: &[&str] = &[
    "AWSReservedSSO_AdministratorAccess",
    "AWSReservedSSO_DeveloperAccess",
    "AWSReservedSSO_ReadOnlyAccess",
    "AWSReservedSSO_DataEngineer",
];
const SERVICES: &[&str] = &[
    "lambda.amazonaws.com",
    "ecs-tasks.amazonaws.com",
    "cloudtrail.amazonaws.com",
    "config.amazonaws.com",
    "autoscaling.amazonaws.com",
    "elasticloadbalancing.amazonaws.com",
];
const HOME_OCTETS: &[u8] = &[
    24, 31, 37, 46, 62, 67, 73, 77, 81, 86, 89, 92, 98, 108, 109, 176, 178, 188, 193, 212, 213, 217,
];
const AWS_OCTETS: &[u8] = &[3, 13, 18, 34, 35, 44, 52, 54];

/// The Lambda function (and role) that creates SSM command documents every day: the habitual
/// creator the rare-user rule must not alert on.
pub const DOC_PUBLISHER_ROLE: &str = "ssm-doc-publisher-role";
pub const DOC_PUBLISHER_SESSION: &str = "ssm-doc-publisher";

pub fn public_ip(rng: &mut Rng, octets: &[u8]) -> String {
    format!(
        "{}.{}.{}.{}",
        rng.pick(octets),
        rng.range(0, 255),
        rng.range(0, 255),
        rng.range(1, 254)
    )
}

fn agent(rng: &mut Rng, client: Client) -> String {
    match client {
        Client::AwsCli => {
            let os = *rng.pick(&[
                "os/linux#6.8.0-1016-aws md/arch#x86_64",
                "os/macos#23.6.0 md/arch#arm64",
                "os/macos#24.1.0 md/arch#arm64",
                "os/windows#10 md/arch#amd64",
                "os/linux#6.5.0-44-generic md/arch#x86_64",
            ]);
            format!(
                "aws-cli/2.{}.{} md/awscrt#0.{}.{} ua/2.0 {} lang/python#3.12.{} md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off",
                rng.range(15, 22),
                rng.range(0, 40),
                rng.range(20, 23),
                rng.range(0, 9),
                os,
                rng.range(4, 8)
            )
        }
        Client::Boto3 => {
            let minor = rng.range(28, 35);
            let patch = rng.range(0, 150);
            format!(
                "Boto3/1.{minor}.{patch} md/Botocore#1.{minor}.{patch} ua/2.0 os/linux#5.10.{}-{}.amzn2.x86_64 md/arch#x86_64 lang/python#3.{}.{} md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.{minor}.{patch}",
                rng.range(200, 230),
                rng.range(190, 220),
                rng.range(9, 12),
                rng.range(1, 18)
            )
        }
        Client::Terraform => format!(
            "APN/1.0 HashiCorp/1.0 Terraform/1.{}.{} (+https://www.terraform.io) terraform-provider-aws/5.{}.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.{}.{} os/linux lang/go#1.22.{} md/GOOS#linux md/GOARCH#amd64",
            rng.range(5, 9),
            rng.range(0, 6),
            rng.range(40, 75),
            rng.range(26, 32),
            rng.range(0, 9),
            rng.range(3, 8)
        ),
        Client::Console => "console.amazonaws.com".to_owned(),
        Client::Service => String::new(),
    }
}

/// Browser user agents for console sign-in.
pub const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
];

fn account_id(rng: &mut Rng) -> String {
    format!("{}{:011}", rng.range(1, 9), rng.below(100_000_000_000))
}

/// Builds the organisation: `accounts` accounts, each with `humans_per_account` people.
pub fn build(seed: u64, accounts: u16, humans_per_account: u16) -> World {
    let mut rng = Rng::new(super::rng::derive(seed, 0x0057_4f52_4c44));
    let account_ids: Vec<String> = (0..accounts).map(|_| account_id(&mut rng)).collect();
    let mut principals = Vec::new();
    let mut doc_publisher = Vec::new();
    let zone_weights: Vec<u32> = ZONES.iter().map(|z| z.1).collect();
    let region_weights: Vec<u32> = REGIONS.iter().map(|r| r.1).collect();
    for account in 0..accounts {
        let office_ip = public_ip(&mut rng, HOME_OCTETS);
        let sso_suffix = rng.hex(16);
        // People.
        for i in 0..humans_per_account {
            let first = rng.pick(FIRST);
            let last = rng.pick(LAST);
            let name = if i % 7 == 3 {
                format!("{first}.{last}{}", rng.range(2, 9))
            } else {
                format!("{first}.{last}")
            };
            let tz = ZONES[rng.weighted(&zone_weights)].0;
            let sso = rng.chance(0.55);
            let client = match rng.below(10) {
                0..=3 => Client::Console,
                4..=7 => Client::AwsCli,
                8 => Client::Terraform,
                _ => Client::Boto3,
            };
            let identity = if sso {
                Identity::AssumedRole {
                    role: format!("{}_{sso_suffix}", rng.pick(SSO_ROLES)),
                    path: "/aws-reserved/sso.amazonaws.com/".to_owned(),
                    role_id: format!("AROA{}", rng.upper_alnum(17)),
                    session: Some(format!("{name}@example.com")),
                }
            } else {
                Identity::IamUser {
                    name: name.clone(),
                    principal_id: format!("AIDA{}", rng.upper_alnum(17)),
                    access_key: format!("AKIA{}", rng.upper_alnum(16)),
                }
            };
            let ip = if rng.chance(0.5) {
                office_ip.clone()
            } else {
                public_ip(&mut rng, HOME_OCTETS)
            };
            principals.push(Principal {
                class: Class::Human,
                account,
                identity,
                tz_minutes: tz,
                ip,
                client,
                agent: agent(&mut rng, client),
                home_region: rng.weighted(&region_weights) as u8,
                weight: rng.range(1, 12) as u32,
            });
        }
        // Workloads.
        for role in AUTOMATION_ROLES {
            if !rng.chance(0.8) {
                continue;
            }
            let lambda = role.ends_with("-lambda");
            let client = if role.contains("terraform") {
                Client::Terraform
            } else {
                Client::Boto3
            };
            principals.push(Principal {
                class: Class::Automation,
                account,
                identity: Identity::AssumedRole {
                    role: (*role).to_owned(),
                    path: "/".to_owned(),
                    role_id: format!("AROA{}", rng.upper_alnum(17)),
                    session: lambda.then(|| role.trim_end_matches("-lambda").to_owned()),
                },
                tz_minutes: 0,
                ip: public_ip(&mut rng, AWS_OCTETS),
                client,
                agent: agent(&mut rng, client),
                home_region: rng.weighted(&region_weights) as u8,
                weight: rng.range(5, 40) as u32,
            });
        }
        doc_publisher.push(principals.len());
        principals.push(Principal {
            class: Class::Automation,
            account,
            identity: Identity::AssumedRole {
                role: DOC_PUBLISHER_ROLE.to_owned(),
                path: "/service-role/".to_owned(),
                role_id: format!("AROA{}", rng.upper_alnum(17)),
                session: Some(DOC_PUBLISHER_SESSION.to_owned()),
            },
            tz_minutes: 0,
            ip: public_ip(&mut rng, AWS_OCTETS),
            client: Client::Boto3,
            agent: agent(&mut rng, Client::Boto3),
            home_region: GLOBAL_REGION,
            weight: 2,
        });
        // AWS services and the SSM service-linked role.
        for service in SERVICES {
            principals.push(Principal {
                class: Class::Service,
                account,
                identity: Identity::AwsService {
                    service: (*service).to_owned(),
                },
                tz_minutes: 0,
                ip: (*service).to_owned(),
                client: Client::Service,
                agent: (*service).to_owned(),
                home_region: rng.weighted(&region_weights) as u8,
                weight: rng.range(5, 20) as u32,
            });
        }
        principals.push(Principal {
            class: Class::Service,
            account,
            identity: Identity::AssumedRole {
                role: "AWSServiceRoleForAmazonSSM".to_owned(),
                path: "/aws-service-role/ssm.amazonaws.com/".to_owned(),
                role_id: format!("AROA{}", rng.upper_alnum(17)),
                session: Some("StateManagerService".to_owned()),
            },
            tz_minutes: 0,
            ip: "ssm.amazonaws.com".to_owned(),
            client: Client::Service,
            agent: "ssm.amazonaws.com".to_owned(),
            home_region: GLOBAL_REGION,
            weight: 10,
        });
        principals.push(Principal {
            class: Class::Root,
            account,
            identity: Identity::Root,
            tz_minutes: 60,
            ip: public_ip(&mut rng, HOME_OCTETS),
            client: Client::Console,
            agent: "console.amazonaws.com".to_owned(),
            home_region: GLOBAL_REGION,
            weight: 1,
        });
    }
    World {
        accounts: account_ids,
        principals,
        doc_publisher,
    }
}

impl World {
    /// Indices of the principals of one class.
    pub fn of_class(&self, class: Class) -> Vec<usize> {
        (0..self.principals.len())
            .filter(|i| self.principals[*i].class == class)
            .collect()
    }
}
