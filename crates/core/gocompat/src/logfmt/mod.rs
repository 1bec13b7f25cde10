//! logfmt as go-logfmt reads and writes it. Decoding comes once per behaviour Loki shows. Both follow go-logfmt
//! (github.com/go-logfmt/logfmt); they differ in what happens at a syntax error and in who
//! unquotes, so they are kept apart, side by side:
//!
//! | module | follows | at a syntax error | quoted values | error texts | used by |
//! |---|---|---|---|---|---|
//! | [`loki_decoder`] | go-logfmt's `Decoder` as forked into Loki's `pkg/logql/log/logfmt` | records it, skips to the next blank, goes on | unquoted here (JSON escapes plus `\'`; lone surrogates → U+FFFD) | go-logfmt's (`logfmt syntax error at pos N : …`) | logql `\| logfmt`, `\| logfmt a="k"` |
//! | [`go_logfmt`] | go-logfmt's `ScanKeyval` loop as Loki's distributor and pattern code run it | the scan ends (pairs before it stay read) | handed over still escaped; the caller unescapes (distributor: lenient JSON; querier: strict JSON) | none | distributor `detected_level`, querier Drain tokenizer |
//!
//! [`loki_decoder`] also refuses keys holding U+FFFD (`invalid key`); [`go_logfmt`] does not.
//!
//! [`encode`] writes values as go-logfmt's encoder does (Skald's own logger, the Drain
//! tokenizer's patterns).

pub mod encode;
pub mod go_logfmt;
pub mod loki_decoder;
