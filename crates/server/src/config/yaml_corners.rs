//! The YAML corners a config file may use, pinned so that a change of YAML library shows here:
//! anchors and aliases, merge keys, tags, duplicate keys, several documents, and how `/config`
//! prints values. (`${VAR}` expansion is ours and happens on the text before YAML sees it.)

use super::*;

fn ports(text: &str) -> (u16, u16) {
    let c = parse(text).unwrap();
    (c.server.http_listen_port, c.server.grpc_listen_port)
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn anchors_aliases_and_tags() {
    assert_eq!(
        ports("server:\n  http_listen_port: &p 3200\n  grpc_listen_port: *p\n"),
        (3200, 3200)
    );
    assert_eq!(
        error("server:\n  http_listen_port: *nope\n"),
        "invalid config: unknown anchor at line 2 column 21"
    );
    // core tags resolve; unknown tags on scalars are dropped, on raw blocks kept
    assert_eq!(ports("server:\n  http_listen_port: !!int 3400\n").0, 3400);
    assert_eq!(ports("server:\n  http_listen_port: !custom 3400\n").0, 3400);
    let ruler = parse("ruler: !custom {a: 1}\n").unwrap().ruler.unwrap();
    assert_eq!(serde_yaml::to_string(&ruler).unwrap(), "!custom\na: 1\n");
    assert_eq!(ports("server:\n  http_listen_port: 0x10\n").0, 16);
}

#[test]
fn merge_keys_are_not_applied() {
    let err = error("server:\n  <<: {http_listen_port: 3300}\n");
    assert!(err.starts_with("invalid config: unknown field `<<`, expected one of"), "{err}");
}

#[test]
fn duplicates_documents_and_types_are_refused() {
    assert_eq!(
        error("server:\n  http_listen_port: 1\n  http_listen_port: 2\n"),
        "invalid config: server: duplicate entry with key \"http_listen_port\" at line 2 column 3"
    );
    assert_eq!(
        error("server: {http_listen_port: 1}\nserver: {grpc_listen_port: 2}\n"),
        "invalid config: duplicate entry with key \"server\""
    );
    assert_eq!(
            error("server:\n  http_listen_port: 3100\n---\nserver:\n  http_listen_port: 3200\n"),
            "invalid config: deserializing from YAML containing more than one document is not supported"
        );
    assert_eq!(
        error("server:\n  http_listen_port: '3100'\n"),
        "invalid config: invalid type: string \"3100\", expected u16"
    );
    assert_eq!(
        error("server:\n  http_listen_port: 70000\n"),
        "invalid config: invalid value: integer `70000`, expected u16"
    );
    assert_eq!(
            error("server:\n  http_listen_port: [1\n"),
            "invalid config: did not find expected ',' or ']' at line 3 column 1, while parsing a flow sequence at line 2 column 21"
        );
}

#[test]
fn values_print_as_before() {
    let v: serde_yaml::Value = serde_yaml::from_str(
            "a: ''\nb: '123'\nc: ~\nd: 'yes'\ne: \"two\\nlines\"\nf: 1.5\ng: [x, 'y: z']\nh: {}\ni: !t 5\nj: 'null'\nk: -0.0\nl: .inf\n",
        )
        .unwrap();
    assert_eq!(
            serde_yaml::to_string(&v).unwrap(),
            "a: ''\nb: '123'\nc: null\nd: yes\ne: |-\n  two\n  lines\nf: 1.5\ng:\n- x\n- 'y: z'\nh: {}\ni: !t 5\nj: 'null'\nk: -0.0\nl: .inf\n"
        );
}

#[test]
fn refusals_keep_their_texts() {
    let refused = |text: &str| parse(text).unwrap().validate().unwrap_err().to_string();
    assert_eq!(
            refused("schema_config:\n  configs:\n  - from: 2024-01-01\n    store: cassandra\n"),
            "schema_config.configs[0].store `cassandra` is not supported (supported: tsdb, boltdb-shipper (both use Skald's object-store index), aws, aws-dynamo (DynamoDB tables))"
        );
    assert_eq!(
            refused("schema_config:\n  configs:\n  - from: 2024-01-01\n    object_store: gcs\n"),
            "schema_config.configs[0].object_store `gcs` is not supported (supported: filesystem, s3, aws)"
        );
    assert_eq!(
        refused("schema_config:\n  configs:\n  - from: 2024-01-01\n  - from: 2024-01-01\n"),
        "schema_config.configs[1].from must be after the previous period's"
    );
    assert_eq!(
            refused("schema_config:\n  configs:\n  - from: 2024-01-01\n    store: aws\n"),
            "schema_config.configs[0].store `aws` keeps the index in DynamoDB: set storage_config.aws.dynamodb.dynamodb_url"
        );
    let bad_port = parse("memberlist:\n  bind_port: x\n").unwrap().memberlist().unwrap_err();
    assert_eq!(bad_port.to_string(), "memberlist.bind_port must be a port number");
    assert_eq!(
        parse("ingester: 3\n").unwrap_err().to_string(),
        "invalid config: `ingester` must be a mapping"
    );
}
