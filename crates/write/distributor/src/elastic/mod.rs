//! Elasticsearch bulk ingest (`POST /_bulk`, `POST /<index>/_bulk`) for Filebeat, Fluentd,
//! Fluent Bit's `es` output and the Elasticsearch client libraries. See
//! `docs/ingest-elasticsearch.md` for the mapping and the handshake endpoints.
//!
//! Each `index` / `create` action with its source line becomes one log entry:
//! - **labels**: `_index` (from the action line, else the URL) as `index_label` (default
//!   `index`), every configured `label_fields` path found in the document (dotted paths match
//!   nested objects and literal dotted keys: `kubernetes.pod_name`, `kubernetes.pod.name`),
//!   and every scalar member of the `label_prefixes` objects (`kubernetes.labels.*`);
//! - **line**: the JSON source without the promoted fields (and without objects they left
//!   empty); the other members keep their bytes and order;
//! - **timestamp**: `timestamp_field` (`@timestamp`) as RFC 3339 or epoch milliseconds, else the
//!   time of arrival.
//!
//! `update` and `delete` actions, bad sources and entries the push path would reject get
//! per-item errors in Elasticsearch's bulk response shape; the other items are stored.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::decode::{read_capped, too_large, DecodeError, DecodeLimits, RawStream};
use crate::error::ElasticConfigError;
use crate::{labels, Distributor, Prepared, PushError};

mod answers;
mod bulk;
pub mod objects;

pub use answers::{error_response, error_type, license, root_info, xpack, BulkOutcome};
pub use bulk::{bulk_documents, BulkDocument};
use bulk::{parse_bulk, Parsed};

/// `distributor.elasticsearch` in the Skald config (not a Loki setting).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticConfig {
    /// Serve the bulk API and the handshake endpoints.
    pub enabled: bool,
    /// The version `GET /` reports. Filebeat refuses a server older than itself (unless
    /// `allow_older_versions`), so this is the last 8.x release by default.
    pub version: String,
    /// The `cluster_name` `GET /` reports.
    pub cluster_name: String,
    /// The label `_index` becomes; empty: `_index` is not a label.
    pub index_label: String,
    /// Document field path → label name. A field whose value is a string, number or boolean
    /// becomes the label; objects and arrays are left in the line.
    pub label_fields: BTreeMap<String, String>,
    /// Object path → label-name prefix: every scalar member of that object becomes a label
    /// named prefix + member name (normalized: `app.kubernetes.io/name` →
    /// `app_kubernetes_io_name`).
    pub label_prefixes: BTreeMap<String, String>,
    /// Keep promoted fields in the line too.
    pub keep_label_fields: bool,
    /// Field with the entry's time (RFC 3339 or epoch milliseconds); empty: time of arrival.
    pub timestamp_field: String,
    /// Largest body of an index template, component template, ILM policy, ingest pipeline or
    /// data stream (`PUT /_index_template/<name>`, ...), compressed or not; larger: 413.
    /// 0: only `max_recv_msg_size` and `max_decompressed_size` apply.
    #[serde(with = "skald_common::units::bytesize")]
    pub max_template_bytes: u64,
    /// Most such objects (of all kinds together) a tenant may keep; one more: 400.
    /// 0: no limit.
    pub max_templates_per_tenant: usize,
}

impl Default for ElasticConfig {
    fn default() -> Self {
        let fields = [
            // Fluent Bit's kubernetes filter.
            ("kubernetes.namespace_name", "namespace"),
            ("kubernetes.pod_name", "pod"),
            ("kubernetes.container_name", "container"),
            // Filebeat's add_kubernetes_metadata.
            ("kubernetes.namespace", "namespace"),
            ("kubernetes.pod.name", "pod"),
            ("kubernetes.container.name", "container"),
        ];
        ElasticConfig {
            enabled: true,
            version: "8.19.0".to_string(),
            cluster_name: "skald".to_string(),
            index_label: "index".to_string(),
            label_fields: fields.iter().map(|(f, l)| (f.to_string(), l.to_string())).collect(),
            label_prefixes: [("kubernetes.labels".to_string(), String::new())].into(),
            keep_label_fields: false,
            timestamp_field: "@timestamp".to_string(),
            // Filebeat's index template, the largest a shipper puts, is 100-200 KB
            max_template_bytes: 1 << 20,
            max_templates_per_tenant: 100,
        }
    }
}

fn valid_label_name(s: &str) -> bool {
    skald_model::labels::is_valid_label_name(s)
}

impl ElasticConfig {
    /// Checks label names, paths and the version string.
    pub fn validate(&self) -> Result<(), ElasticConfigError> {
        if !self.index_label.is_empty() && !valid_label_name(&self.index_label) {
            return Err(ElasticConfigError::IndexLabel(self.index_label.clone()));
        }
        for (field, label) in &self.label_fields {
            if field.is_empty() || field.split('.').any(str::is_empty) {
                return Err(ElasticConfigError::FieldPath(field.clone()));
            }
            if !valid_label_name(label) {
                return Err(ElasticConfigError::FieldLabel {
                    field: field.clone(),
                    label: label.clone(),
                });
            }
        }
        for (path, prefix) in &self.label_prefixes {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(ElasticConfigError::PrefixPath(path.clone()));
            }
            if !prefix.is_empty() && !valid_label_name(prefix) {
                return Err(ElasticConfigError::Prefix {
                    path: path.clone(),
                    prefix: prefix.clone(),
                });
            }
        }
        let parts: Vec<&str> = self.version.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.parse::<u32>().is_err()) {
            return Err(ElasticConfigError::Version(self.version.clone()));
        }
        Ok(())
    }
}

/// Decompresses a bulk body (`Content-Encoding` none, `gzip`, `deflate`, `zstd`), capped.
fn decompress(
    body: &[u8],
    content_encoding: Option<&str>,
    limits: &DecodeLimits,
) -> Result<Option<Vec<u8>>, DecodeError> {
    let max_recv = limits.max_recv_msg_size;
    if max_recv > 0 && body.len() as u64 > max_recv {
        return Err(too_large("message size too large", body.len() as u64, max_recv));
    }
    let cap = limits.max_decompressed_size;
    match content_encoding.unwrap_or("").trim().to_ascii_lowercase().as_str() {
        "" | "identity" => {
            if cap > 0 && body.len() as u64 > cap {
                return Err(too_large(
                    "decompressed message size too large",
                    body.len() as u64,
                    cap,
                ));
            }
            Ok(None)
        }
        "gzip" => {
            if body.len() < 2 || body[0] != 0x1f || body[1] != 0x8b {
                return Err(DecodeError::Invalid("gzip: invalid header".to_string()));
            }
            read_capped(flate2::read::MultiGzDecoder::new(body), cap).map(Some)
        }
        "deflate" => read_capped(flate2::read::ZlibDecoder::new(body), cap).map(Some),
        "zstd" => {
            let d = zstd::stream::read::Decoder::new(body)
                .map_err(|e| DecodeError::Invalid(format!("zstd: {e}")))?;
            read_capped(d, cap).map(Some)
        }
        other => Err(DecodeError::Invalid(format!(
            "Content-Encoding {other:?} not supported (supported: gzip, deflate, zstd)"
        ))),
    }
}

impl Distributor {
    /// Decompresses the body of an Elasticsearch API call other than `_bulk` (index
    /// templates, pipelines, ...) under the caps of a bulk body and
    /// `elasticsearch.max_template_bytes` (before and after decompression).
    pub fn decompress_elastic_body(
        &self,
        body: &[u8],
        content_encoding: Option<&str>,
    ) -> Result<Vec<u8>, PushError> {
        let mut limits = self.decode_limits();
        let max = self.config.elasticsearch.max_template_bytes;
        let capped = |limit: u64| if limit == 0 { max } else { limit.min(max) };
        if max > 0 {
            limits.max_recv_msg_size = capped(limits.max_recv_msg_size);
            limits.max_decompressed_size = capped(limits.max_decompressed_size);
        }
        match decompress(body, content_encoding, &limits) {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Ok(body.to_vec()),
            Err(DecodeError::TooLarge(m)) if max > 0 => Err(PushError::BodyTooLarge(format!(
                "{m} (distributor.elasticsearch.max_template_bytes: {max})"
            ))),
            Err(DecodeError::TooLarge(m)) => Err(PushError::BodyTooLarge(m)),
            Err(DecodeError::Invalid(m)) => Err(PushError::BadRequest(m)),
        }
    }

    /// Handles one bulk body for `tenant`. `url_index` is the `<index>` of `/<index>/_bulk`.
    /// `Ok` is answered with HTTP 200 and [`BulkOutcome::to_json`] (per-item errors included);
    /// `Err` is a whole-request failure (bad NDJSON 400, too large 413, rate limit 429,
    /// ingester failure 5xx).
    pub async fn push_elastic(
        &self,
        tenant: &str,
        url_index: Option<&str>,
        body: Bytes,
        content_encoding: Option<&str>,
    ) -> Result<BulkOutcome, PushError> {
        let started = Instant::now();
        let limits = self.decode_limits();
        let decompressed = match decompress(&body, content_encoding, &limits) {
            Ok(d) => d,
            Err(e) => return Err(self.decode_error(tenant, body.len(), e)),
        };
        let data: &[u8] = decompressed.as_deref().unwrap_or(&body);
        let now = crate::now_ns();
        let cfg = &self.config.elasticsearch;
        let Parsed { mut items, docs } = parse_bulk(cfg, url_index, data, now)?;
        let tenant_limits = self.overrides.tenant(tenant);

        // Check each document as the push path will, so that its failure is its own item's.
        let mut streams: Vec<RawStream> = Vec::new();
        let mut by_labels: HashMap<String, usize> = HashMap::new();
        let mut pushed: Vec<usize> = Vec::new();
        for doc in docs {
            let labels_str = labels::to_string(&doc.labels);
            let p = Prepared {
                labels: doc.labels,
                labels_str: labels_str.clone(),
                internal: false,
                entries: Vec::new(),
            };
            let check = Distributor::validate_labels(&tenant_limits, &p).and_then(|()| {
                Distributor::validate_entry(&tenant_limits, &labels_str, &doc.entry, now)
            });
            if let Err((_, msg)) = check {
                items[doc.item].error = Some((400, "illegal_argument_exception", msg));
                continue;
            }
            let i = *by_labels.entry(labels_str.clone()).or_insert_with(|| {
                streams.push(RawStream { labels: labels_str, entries: Vec::new() });
                streams.len() - 1
            });
            streams[i].entries.push(doc.entry);
            pushed.push(doc.item);
        }
        if !streams.is_empty() {
            match self.push_raw(tenant, streams).await {
                Ok(_) => {}
                Err(e @ (PushError::Validation(_) | PushError::StreamRateLimited(_))) => {
                    // Stored in part: the push path does not say which entries; the items are
                    // reported failed so the client resends them (exact duplicates are dropped
                    // by the ingester).
                    let (status, kind) = if e.status_code() == 429 {
                        (429, "es_rejected_execution_exception")
                    } else {
                        (400, "illegal_argument_exception")
                    };
                    for i in pushed {
                        items[i].error = Some((status, kind, e.to_string()));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(BulkOutcome { took: started.elapsed().as_millis() as u64, items })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::bulk::map_document;
    use super::*;

    fn cfg() -> ElasticConfig {
        ElasticConfig::default()
    }

    #[test]
    fn default_config_is_valid_and_bad_values_are_named() {
        assert!(cfg().validate().is_ok());
        let c = ElasticConfig { index_label: "in-dex".into(), ..cfg() };
        assert!(c.validate().unwrap_err().to_string().contains("index_label"));
        let mut c = cfg();
        c.label_fields.insert("a..b".into(), "x".into());
        assert!(c.validate().unwrap_err().to_string().contains("bad field path"));
        let mut c = cfg();
        c.label_fields.insert("a".into(), "1x".into());
        assert!(c.validate().unwrap_err().to_string().contains("not a valid label name"));
        let c = ElasticConfig { version: "8".into(), ..cfg() };
        assert!(c.validate().unwrap_err().to_string().contains("8.19.0"));
        let err = serde_yaml::from_str::<ElasticConfig>("label_field: {}\n").unwrap_err();
        assert!(err.to_string().contains("label_field"), "{err}");
    }

    #[test]
    fn maps_fluent_bit_and_filebeat_documents() {
        let fb = br#"{"@timestamp":"2024-05-01T12:00:00.123Z","log":"hello","stream":"stdout","kubernetes":{"pod_name":"web-1","namespace_name":"shop","container_name":"nginx","labels":{"app":"web","app.kubernetes.io/name":"web"},"host":"n1"}}"#;
        let (labels, e) = map_document(&cfg(), "fluent-bit", fb, 7).unwrap();
        let l: Vec<(&str, &str)> =
            labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        assert_eq!(
            l,
            vec![
                ("app", "web"),
                ("app_kubernetes_io_name", "web"),
                ("container", "nginx"),
                ("index", "fluent-bit"),
                ("namespace", "shop"),
                ("pod", "web-1"),
            ]
        );
        assert_eq!(e.ts, 1_714_564_800_123_000_000);
        assert_eq!(
            e.line,
            r#"{"@timestamp":"2024-05-01T12:00:00.123Z","log":"hello","stream":"stdout","kubernetes":{"host":"n1"}}"#
        );

        let beat = br#"{"@timestamp": 1714564800123, "message": "GET /", "kubernetes": {"namespace": "shop", "pod": {"name": "web-1", "uid": "u"}, "container": {"name": "nginx"}}, "kubernetes.labels.tier": "front"}"#;
        let (labels, e) = map_document(&cfg(), "filebeat-8.19.0", beat, 7).unwrap();
        let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, vec!["container", "index", "namespace", "pod"]);
        assert_eq!(e.ts, 1_714_564_800_123_000_000);
        assert_eq!(
            e.line,
            r#"{"@timestamp":1714564800123,"message":"GET /","kubernetes":{"pod":{"uid":"u"}},"kubernetes.labels.tier":"front"}"#
        );
        // Without a timestamp: the time of arrival; with keep_label_fields the line is as sent.
        let keep = ElasticConfig { keep_label_fields: true, ..cfg() };
        let (_, e) = map_document(&keep, "i", br#" {"kubernetes":{"pod_name":"p"}} "#, 7).unwrap();
        assert_eq!((e.ts, e.line.as_str()), (7, Some(r#"{"kubernetes":{"pod_name":"p"}}"#)));
        let (_, e) = map_document(&cfg(), "i", br#"{"kubernetes":{"pod_name":"p"}}"#, 7).unwrap();
        assert_eq!(e.line, "{}");
        // Bad documents.
        assert_eq!(
            map_document(&cfg(), "i", b"{oops", 7).unwrap_err().0,
            "document_parsing_exception"
        );
        assert!(map_document(&cfg(), "i", b"[1]", 7).unwrap_err().1.contains("not a JSON object"));
        assert!(map_document(&cfg(), "i", br#"{"@timestamp":"yesterday"}"#, 7)
            .unwrap_err()
            .1
            .contains("failed to parse field [@timestamp]"));
        assert_eq!(
            map_document(&cfg(), "i", br#"{"@timestamp":"2024-05-01T12:00:00"}"#, 7).unwrap().1.ts,
            1_714_564_800_000_000_000
        );
    }

    #[test]
    fn bulk_lines_and_per_item_errors() {
        let body = concat!(
            "{\"create\":{\"_index\":\"a\",\"_type\":\"_doc\"}}\n{\"log\":\"one\"}\n",
            "{\"index\":{\"_id\":\"x1\"}}\n{\"log\":\"two\"}\r\n",
            "\n",
            "{\"update\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"doc\":{}}\n",
            "{\"delete\":{\"_index\":\"a\",\"_id\":\"1\"}}\n",
            "{\"index\":{}}\n{not json}\n",
            "{\"create\":{\"_index\":\"b\"}}\n{\"log\":\"three\"}"
        );
        let p = parse_bulk(&cfg(), Some("url-idx"), body.as_bytes(), 1).unwrap();
        assert_eq!(p.items.len(), 6);
        assert_eq!(p.docs.len(), 3);
        assert_eq!(p.items[1].index, "url-idx");
        assert_eq!(p.items[1].id, "x1");
        assert_eq!(p.items[0].id.len(), 20);
        assert!(p.items[2].error.as_ref().unwrap().2.contains("[update] is not supported"));
        assert!(p.items[3].error.as_ref().unwrap().2.contains("[delete] is not supported"));
        assert_eq!(p.items[4].error.as_ref().unwrap().1, "document_parsing_exception");
        assert_eq!(p.docs[2].entry.line, r#"{"log":"three"}"#);

        let err = |b: &str| match parse_bulk(&cfg(), None, b.as_bytes(), 1) {
            Err(PushError::BadRequest(m)) => m,
            other => panic!("{:?}", other.map(|p| p.items)),
        };
        assert!(err("{\"upsert\":{}}\n{}\n").contains("but found [upsert]"));
        assert!(err("not json\n").starts_with("Malformed action/metadata line [1]"));
        assert!(err("{\"index\":{}}\n").contains("has no source line"));
        assert!(err("{\"index\":1}\n{}\n").contains("expected START_OBJECT"));
        assert_eq!(err("\n\n"), "Validation Failed: 1: no requests added;");
        let p = parse_bulk(&cfg(), None, b"{\"index\":{}}\n{}\n", 1).unwrap();
        assert!(p.items[0].error.as_ref().unwrap().2.contains("index is missing"));
    }

    #[test]
    fn response_shape_and_filter_path() {
        let p = parse_bulk(
            &cfg(),
            Some("i"),
            b"{\"create\":{\"_id\":\"a\"}}\n{}\n{\"delete\":{\"_id\":\"b\"}}\n",
            1,
        )
        .unwrap();
        let out = BulkOutcome { took: 3, items: p.items };
        let full = out.to_json(None);
        assert_eq!(full["took"], 3);
        assert_eq!(full["errors"], true);
        assert_eq!(full["items"][0]["create"]["status"], 201);
        assert_eq!(full["items"][0]["create"]["result"], "created");
        assert_eq!(full["items"][1]["delete"]["status"], 400);
        assert_eq!(full["items"][1]["delete"]["error"]["type"], "illegal_argument_exception");
        let filtered = out.to_json(Some("errors,items.*.error,items.*.status"));
        assert_eq!(
            filtered,
            json!({"errors": true, "items": [
                {"create": {"status": 201}},
                {"delete": {"status": 400, "error": {"type": "illegal_argument_exception",
                    "reason": full["items"][1]["delete"]["error"]["reason"]}}}
            ]})
        );
        // "errors" before "items": Fluent Bit reads the keys in order.
        let text = serde_json::to_string(&full).unwrap();
        assert!(text.find("\"errors\"").unwrap() < text.find("\"items\"").unwrap());
    }

    #[test]
    fn decompression_is_capped() {
        use std::io::Write;
        let limits = DecodeLimits { max_recv_msg_size: 1 << 20, max_decompressed_size: 1 << 16 };
        let zeros = vec![b' '; 8 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(matches!(decompress(&bomb, Some("gzip"), &limits), Err(DecodeError::TooLarge(_))));
        let bomb = zstd::encode_all(zeros.as_slice(), 3).unwrap();
        assert!(matches!(decompress(&bomb, Some("zstd"), &limits), Err(DecodeError::TooLarge(_))));
        assert!(matches!(
            decompress(&zeros[..1 << 17], None, &limits),
            Err(DecodeError::TooLarge(_))
        ));
        assert!(matches!(decompress(b"xx", Some("br"), &limits), Err(DecodeError::Invalid(_))));
        assert!(matches!(decompress(b"xx", Some("gzip"), &limits), Err(DecodeError::Invalid(_))));
    }
}
