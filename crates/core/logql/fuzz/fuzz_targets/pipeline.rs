//! Fuzzes pipeline evaluation: the first line of the input is a LogQL query, the rest are log
//! lines (any bytes, UTF-8 or not). Log queries run their pipeline over every line; metric
//! queries run the sample extractor of each range aggregation. Nothing may panic, hang or grow
//! without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skald_logql::log::{Pipeline, SampleExtractor};
use skald_logql::syntax::ast::{Expr, SampleExpr};
use skald_logql::syntax::parse_expr;
use skald_model::{Label, Labels};

fn ranges(e: &SampleExpr, out: &mut Vec<SampleExpr>) {
    match e {
        SampleExpr::RangeAggregation { .. } => out.push(e.clone()),
        SampleExpr::VectorAggregation { expr, .. }
        | SampleExpr::LabelReplace { expr, .. }
        | SampleExpr::Paren(expr) => ranges(expr, out),
        SampleExpr::Binary { lhs, rhs, .. } => {
            ranges(lhs, out);
            ranges(rhs, out);
        }
        SampleExpr::Literal(_) | SampleExpr::Vector(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // the query is text; the lines are bytes, UTF-8 or not (as pushed lines are)
    let (query, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let Ok(expr) = parse_expr(query) else {
        return;
    };
    let stream = Labels::from_pairs([("job", "fuzz".to_string()), ("level", "info".to_string())]);
    let metadata = [Label::new("trace_id", "abc")];
    match expr {
        Expr::Log(sel) => {
            let Ok(p) = Pipeline::new(&sel.stages) else {
                return;
            };
            let mut sp = p.for_stream(&stream);
            for (i, line) in body.split(|&b| b == b'\n').enumerate() {
                let _ = sp.process(i as i64, line, &metadata);
            }
        }
        Expr::Sample(e) => {
            let mut rs = Vec::new();
            ranges(&e, &mut rs);
            for r in rs {
                let SampleExpr::RangeAggregation { op, range, .. } = r else { continue };
                let Ok(x) = SampleExtractor::new(&range, op) else { continue };
                let mut sx = x.for_stream(&stream);
                for (i, line) in body.split(|&b| b == b'\n').enumerate() {
                    let _ = sx.process(i as i64, line, &metadata);
                }
            }
        }
    }
});
