//! The syntax tree a parsed template is made of, printed back the way Go prints its nodes
//! in error messages.

use std::fmt;

use super::functions::Func;

#[derive(Debug, Clone)]
pub(super) enum Node {
    Text(String),
    Action(Pipe),
    If(Box<Branch>),
    With(Box<Branch>),
    Range(Box<Branch>),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub(super) struct Branch {
    pub(super) pipe: Pipe,
    pub(super) list: Vec<Node>,
    pub(super) else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub(super) struct Pipe {
    pub(super) pos: usize,
    pub(super) is_assign: bool,
    pub(super) decl: Vec<String>,
    pub(super) cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
pub(super) struct Cmd {
    pub(super) args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub(super) struct Arg {
    pub(super) pos: usize,
    pub(super) kind: ArgKind,
}

#[derive(Debug, Clone)]
pub(super) struct Number {
    pub(super) text: String,
    pub(super) int: Option<i64>,
    pub(super) float: Option<f64>,
}

#[derive(Debug, Clone)]
pub(super) enum ArgKind {
    Dot,
    Nil,
    Bool(bool),
    Str { value: String, quoted: String },
    Num(Number),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(Func),
    Pipe(Box<Pipe>),
    Chain(Box<Arg>, Vec<String>),
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ArgKind::Dot => f.write_str("."),
            ArgKind::Nil => f.write_str("nil"),
            ArgKind::Bool(b) => write!(f, "{b}"),
            ArgKind::Str { quoted, .. } => f.write_str(quoted),
            ArgKind::Num(n) => f.write_str(&n.text),
            ArgKind::Field(names) => {
                for n in names {
                    write!(f, ".{n}")?;
                }
                Ok(())
            }
            ArgKind::Var(v, names) => {
                f.write_str(v)?;
                for n in names {
                    write!(f, ".{n}")?;
                }
                Ok(())
            }
            ArgKind::Func(func) => f.write_str(func.name()),
            ArgKind::Pipe(p) => write!(f, "({p})"),
            ArgKind::Chain(inner, names) => {
                write!(f, "{inner}")?;
                for n in names {
                    write!(f, ".{n}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (j, a) in self.args.iter().enumerate() {
            if j > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}
