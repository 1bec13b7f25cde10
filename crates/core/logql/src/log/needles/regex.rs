//! The literals every match of a `|~` regex contains, from its `regex_syntax` HIR.
//!
//! Each node gives an [`Info`]: the finite set of strings it matches exactly, when small, and
//! clauses every match contains. A concatenation multiplies exact sets until they grow too
//! big, then keeps the set so far as a clause and starts again; an alternation unions exact
//! sets, or ORs the alternatives' best clauses. `(?i)` turns letters into classes like `[Ee]`,
//! read back as ASCII-case-insensitive literals; Unicode folds such as `k` ↔ `K` (U+212A)
//! and `s` ↔ `ſ` stay separate exact literals, so the line `Kelvin` still satisfies the clause
//! of `(?i)kelvin`. Look-arounds (`^`, `\b`) match the empty string here: ignoring them
//! only requires less.

use regex_syntax::hir::{Class, Hir, HirKind};

use super::{or_cnfs, Cnf, NeedleClause, NeedleLiteral};
use crate::log::filter::translate_go_regex;

/// Most literals an exact set holds before it is cut into a clause.
const SET_CAP: usize = 64;
/// Most characters of a class read as a set of literals (`[0-9]` is ten).
const CLASS_CAP: u32 = 10;
/// Most copies of a counted repetition `x{n}` expanded into an exact set.
const REPEAT_CAP: u32 = 4;

/// What a regex node tells about its matches.
#[derive(Debug, Clone, Default)]
struct Info {
    /// Every match is one of these strings (`None`: unknown or too many). Never empty.
    exact: Option<Vec<NeedleLiteral>>,
    /// Every match contains one literal of each clause.
    cnf: Cnf,
}

impl Info {
    fn exact(set: Vec<NeedleLiteral>) -> Info {
        Info { exact: Some(set), cnf: Cnf::new() }
    }

    /// All that is known as clauses (the exact set becomes one clause).
    fn into_cnf(self) -> Cnf {
        let mut cnf = self.cnf;
        if let Some(set) = self.exact {
            push_set(&mut cnf, set);
        }
        cnf
    }
}

/// Adds an exact set as a clause, unless it holds the empty string (then it says nothing).
fn push_set(cnf: &mut Cnf, set: Vec<NeedleLiteral>) {
    if !set.is_empty() && set.iter().all(|l| !l.bytes.is_empty()) {
        cnf.push(set);
    }
}

fn dedup(mut set: Vec<NeedleLiteral>) -> Vec<NeedleLiteral> {
    set.sort();
    set.dedup();
    set
}

/// Every string of `a` followed by every string of `b`, or `None` past [`SET_CAP`].
fn product(a: &[NeedleLiteral], b: &[NeedleLiteral]) -> Option<Vec<NeedleLiteral>> {
    if a.len().saturating_mul(b.len()) > SET_CAP {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            out.push(x.concat(y));
        }
    }
    Some(dedup(out))
}

/// A small class as literals: an ASCII letter whose other case is in the class too becomes
/// one case-insensitive literal, every other character an exact one.
fn class_set(class: &Class) -> Option<Vec<NeedleLiteral>> {
    let mut chars: Vec<Vec<u8>> = Vec::new();
    match class {
        Class::Unicode(c) => {
            let count: u32 = c.ranges().iter().map(|r| r.end() as u32 - r.start() as u32 + 1).sum();
            if count == 0 || count > CLASS_CAP {
                return None;
            }
            for r in c.ranges() {
                for ch in r.start()..=r.end() {
                    chars.push(ch.to_string().into_bytes());
                }
            }
        }
        Class::Bytes(c) => {
            let count: u32 = c.ranges().iter().map(|r| u32::from(r.end() - r.start()) + 1).sum();
            if count == 0 || count > CLASS_CAP {
                return None;
            }
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    chars.push(vec![b]);
                }
            }
        }
    }
    let mut set = Vec::with_capacity(chars.len());
    for ch in &chars {
        let folds = match ch.as_slice() {
            [b] if b.is_ascii_alphabetic() => {
                let other = if b.is_ascii_lowercase() {
                    b.to_ascii_uppercase()
                } else {
                    b.to_ascii_lowercase()
                };
                chars.iter().any(|c| c.as_slice() == [other])
            }
            _ => false,
        };
        set.push(if folds {
            NeedleLiteral::folded(ch.clone())
        } else {
            NeedleLiteral::exact(ch.clone())
        });
    }
    Some(dedup(set))
}

fn concat(subs: &[Hir]) -> Info {
    let mut cnf = Cnf::new();
    // the exact set of the children so far since the last cut (`None`: unknown)
    let mut current: Option<Vec<NeedleLiteral>> = Some(vec![NeedleLiteral::exact(Vec::new())]);
    let mut cut = false;
    for sub in subs {
        let info = analyze(sub);
        cnf.extend(info.cnf);
        match (current.take(), info.exact) {
            (Some(cur), Some(next)) => match product(&cur, &next) {
                Some(p) => current = Some(p),
                None => {
                    push_set(&mut cnf, cur);
                    cut = true;
                    current = Some(next);
                }
            },
            (Some(cur), None) => {
                push_set(&mut cnf, cur);
                cut = true;
            }
            (None, next) => {
                cut = true;
                current = next;
            }
        }
    }
    if cut {
        if let Some(cur) = current {
            push_set(&mut cnf, cur);
        }
        Info { exact: None, cnf }
    } else {
        Info { exact: current, cnf }
    }
}

fn alternation(subs: &[Hir]) -> Info {
    let infos: Vec<Info> = subs.iter().map(analyze).collect();
    if infos.is_empty() {
        return Info::default();
    }
    if infos.iter().all(|i| i.exact.is_some()) {
        let total: usize = infos.iter().map(|i| i.exact.as_ref().map_or(0, Vec::len)).sum();
        if total <= SET_CAP {
            let set = infos.into_iter().flat_map(|i| i.exact.unwrap_or_default()).collect();
            return Info::exact(dedup(set));
        }
    }
    Info { exact: None, cnf: or_cnfs(infos.into_iter().map(Info::into_cnf).collect()) }
}

fn analyze(hir: &Hir) -> Info {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Info::exact(vec![NeedleLiteral::exact(Vec::new())]),
        HirKind::Literal(lit) => Info::exact(vec![NeedleLiteral::exact(lit.0.to_vec())]),
        HirKind::Class(c) => class_set(c).map(Info::exact).unwrap_or_default(),
        HirKind::Capture(c) => analyze(&c.sub),
        HirKind::Concat(subs) => concat(subs),
        HirKind::Alternation(subs) => alternation(subs),
        HirKind::Repetition(r) => {
            let sub = analyze(&r.sub);
            match (r.min, r.max) {
                (0, Some(1)) => match sub.exact {
                    Some(mut set) => {
                        set.push(NeedleLiteral::exact(Vec::new()));
                        Info::exact(dedup(set))
                    }
                    None => Info::default(),
                },
                (0, _) => Info::default(),
                (min, Some(max)) if min == max && min <= REPEAT_CAP && sub.exact.is_some() => {
                    let set = sub.exact.unwrap_or_default();
                    let mut acc = set.clone();
                    for _ in 1..min {
                        match product(&acc, &set) {
                            Some(p) => acc = p,
                            None => {
                                let mut cnf = Cnf::new();
                                push_set(&mut cnf, set);
                                return Info { exact: None, cnf };
                            }
                        }
                    }
                    Info::exact(acc)
                }
                _ => Info { exact: None, cnf: sub.into_cnf() },
            }
        }
    }
}

/// The clauses every match of the Go RE2 regex `src` contains (none when it does not parse).
/// Clauses with a one-byte literal are left out: true of nearly every line, they only add
/// noise.
pub(super) fn regex_cnf(src: &str) -> Cnf {
    let translated = translate_go_regex(src);
    let Ok(hir) = regex_syntax::Parser::new().parse(&translated) else { return Cnf::new() };
    let cnf: Cnf = analyze(&hir).into_cnf();
    cnf.into_iter()
        .filter(|c: &NeedleClause| !c.is_empty() && c.iter().all(|l| l.bytes.len() > 1))
        .collect()
}
