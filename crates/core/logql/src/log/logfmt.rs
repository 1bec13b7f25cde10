//! The `logfmt` parser stage and the `logfmt a="key"` expression form, built on the tolerant
//! key=value decoder with Loki's error positions and messages
//! (`skald_gocompat::logfmt::loki_decoder`). What stays here is LogQL's: label names,
//! collisions, `--strict` and `--keep-empty`.

use skald_gocompat::logfmt::loki_decoder::Decoder;
use skald_gocompat::utf8::lossy;

use super::error::StageError;
use super::json::sanitize_label_key;
use super::labels::{Category, LabelsBuilder, DUPLICATE_SUFFIX};

/// The logfmt parser error label value.
pub(crate) const LOGFMT_PARSER_ERR: &str = "LogfmtParserErr";

fn to_label_value(v: &[u8]) -> std::borrow::Cow<'_, str> {
    super::json::lossy_with_spaces(v)
}

/// `| logfmt [--strict] [--keep-empty]`.
pub(crate) fn parse_logfmt(line: &[u8], strict: bool, keep_empty: bool, lbs: &mut LabelsBuilder) {
    let mut dec = Decoder::new(line);
    while !dec.eol() {
        if !dec.scan() {
            if strict {
                break;
            }
            continue;
        }
        let Some(raw_key) = dec.key else { continue };
        let lossy = lossy(raw_key);
        let mut key = sanitize_label_key(&lossy);
        if key.is_empty() {
            continue;
        }
        if lbs.collides(&key) {
            key.to_mut().push_str(DUPLICATE_SUFFIX);
        }
        if lbs.extracted(&key) || !lbs.should_extract(&key) {
            continue;
        }
        let val = dec.value.as_deref().unwrap_or(b"");
        if !keep_empty && val.is_empty() {
            continue;
        }
        let v = to_label_value(val);
        lbs.set(Category::Parsed, &key, &v);
        if lbs.all_required_extracted() {
            break;
        }
    }
    if strict {
        if let Some(e) = dec.err.take() {
            lbs.set_error(LOGFMT_PARSER_ERR, Some(&e));
        }
    }
}

/// `| logfmt a="key", b`: compiled extraction expressions.
#[derive(Debug, Clone)]
pub(crate) struct LogfmtExpressions {
    /// (label name, logfmt key)
    exprs: Vec<(String, String)>,
    strict: bool,
}

impl LogfmtExpressions {
    pub(crate) fn new(exprs: &[(String, String)], strict: bool) -> Result<Self, StageError> {
        if exprs.is_empty() {
            return Err(StageError::NoLogfmtExpression);
        }
        let mut out = Vec::new();
        for (id, expr) in exprs {
            let key = expr.trim();
            let valid = key.bytes().next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
                && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
            if !valid {
                return Err(StageError::LogfmtExpression(expr.clone()));
            }
            if !skald_model::labels::is_valid_label_name(id) {
                return Err(StageError::InvalidExtractedLabelName(id.clone()));
            }
            // like a map keyed by label name: the last expression for a name wins
            out.retain(|(i, _): &(String, String)| i != id);
            out.push((id.clone(), key.to_string()));
        }
        Ok(LogfmtExpressions { exprs: out, strict })
    }

    pub(crate) fn process(&self, line: &[u8], lbs: &mut LabelsBuilder) {
        for (id, _) in &self.exprs {
            if !lbs.collides(id) {
                lbs.set(Category::Parsed, id, "");
            }
        }
        let always = |k: &str| self.exprs.iter().any(|(id, _)| id == k);
        let mut dec = Decoder::new(line);
        while !dec.eol() {
            if !dec.scan() {
                if self.strict {
                    break;
                }
                continue;
            }
            let Some(raw_key) = dec.key else { continue };
            let key = sanitize_label_key(&lossy(raw_key)).into_owned();
            if key.is_empty() || (!always(&key) && lbs.extracted(&key)) {
                continue;
            }
            let val = match dec.value.as_deref() {
                Some(v) if lossy(v).contains('\u{FFFD}') => Vec::new(),
                Some(v) => v.to_vec(),
                None => Vec::new(),
            };
            let mut key = key;
            if let Some((id, _)) = self.exprs.iter().find(|(_, k)| *k == key) {
                key = id.clone();
            }
            if self.exprs.iter().any(|(id, _)| *id == key) {
                if lbs.collides(&key) {
                    key.push_str(DUPLICATE_SUFFIX);
                }
                lbs.set(Category::Parsed, &key, &lossy(&val));
            }
        }
        if self.strict {
            if let Some(e) = dec.err.take() {
                lbs.set_error(LOGFMT_PARSER_ERR, Some(&e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::Labels;

    fn builder() -> LabelsBuilder {
        LabelsBuilder::new(Labels::parse(r#"{env="test", format="logfmt", job="worker"}"#).unwrap())
    }

    const WORKER: &str = "level=info msg=\"\x1b[1;36mjob started\x1b[0m\" job_id=job-48307 queue=default took=17.5s size=944B attempt=1";

    #[test]
    fn all_pairs() {
        let mut b = builder();
        parse_logfmt(WORKER.as_bytes(), false, false, &mut b);
        assert_eq!(
            b.result().parsed.to_string(),
            r#"{attempt="1", job_id="job-48307", level="info", msg="\x1b[1;36mjob started\x1b[0m", queue="default", size="944B", took="17.5s"}"#
        );
        let mut b = builder();
        parse_logfmt((r#"job=x a= b c="q \"u\"" d=1=2 e"#).as_bytes(), false, false, &mut b);
        assert_eq!(b.result().parsed.to_string(), r#"{c="q \"u\"", job_extracted="x"}"#);
        let mut b = builder();
        parse_logfmt((r#"a= b e"#).as_bytes(), false, true, &mut b);
        assert_eq!(b.result().parsed.to_string(), r#"{a="", b="", e=""}"#);
    }

    #[test]
    fn strict_errors() {
        let mut b = builder();
        parse_logfmt((r#"a=1 b=2=3 c=4"#).as_bytes(), true, false, &mut b);
        assert_eq!(b.err(), LOGFMT_PARSER_ERR);
        assert_eq!(b.err_details(), "logfmt syntax error at pos 8 : unexpected '='");
        assert_eq!(b.get("a"), Some("1"));
        assert_eq!(b.get("c"), None);
        let mut b = builder();
        parse_logfmt((r#"a="x"#).as_bytes(), true, false, &mut b);
        assert_eq!(b.err_details(), "logfmt syntax error at pos 5 : unterminated quoted value");
        // non-strict: no error, later pairs still read
        let mut b = builder();
        parse_logfmt((r#"a=1 b=2=3 c=4"#).as_bytes(), false, false, &mut b);
        assert_eq!(b.err(), "");
        assert_eq!(b.get("c"), Some("4"));
    }

    #[test]
    fn expressions() {
        let ex = LogfmtExpressions::new(
            &[
                ("lvl".into(), "level".into()),
                ("queue".into(), "queue".into()),
                ("none".into(), "nope".into()),
            ],
            false,
        )
        .unwrap();
        let mut b = builder();
        ex.process(WORKER.as_bytes(), &mut b);
        assert_eq!(b.result().parsed.to_string(), r#"{lvl="info", none="", queue="default"}"#);
        assert!(LogfmtExpressions::new(&[("a".into(), "a.b".into())], false).is_err());
    }
}
