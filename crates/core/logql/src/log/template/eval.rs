//! The evaluator: walks the syntax tree, resolves fields, variables and methods, and
//! type-checks function arguments the way Go's `text/template` executor does.

use std::fmt;

use skald_model::Labels;

use super::format::fmt_v;
use super::functions::{CallError, Func};
use super::node::{Arg, ArgKind, Branch, Cmd, Node, Number, Pipe};
use super::parser::is_hex_int;
use super::value::{as_str, truth, Ty, Value};
use super::{line_of, Template, TemplateError, MAX_ITERATIONS, MAX_OUTPUT};
use skald_gocompat::time::{layout, time_string, Time as GoTime};

pub(super) enum Fail {
    Error(TemplateError),
    Break,
    Continue,
}

type EResult<T> = Result<T, Fail>;

#[derive(Clone, Copy)]
pub(super) enum At<'t> {
    Arg(&'t Arg),
    Pipe(&'t Pipe),
    /// A whole command, as Go's `evalCall` reports a failed function call
    /// (`at <index .x 5>: error calling index: ...`).
    Cmd(&'t Cmd),
}

pub(super) struct State<'t> {
    pub(super) tmpl: &'t Template,
    pub(super) labels: &'t Labels,
    pub(super) line: &'t str,
    /// `line` carries invalid bytes as private-use characters ([`super::raw`]).
    pub(super) raw_bytes: bool,
    pub(super) ts_ns: i64,
    pub(super) vars: Vec<(String, Value)>,
    pub(super) at: Option<At<'t>>,
    pub(super) iterations: usize,
}

impl<'t> State<'t> {
    fn errorf(&self, msg: impl fmt::Display) -> Fail {
        let name = &*self.tmpl.name;
        let (pos, ctx) = match self.at {
            None => return Fail::Error(TemplateError::new(format!("template: {name}: {msg}"))),
            Some(At::Arg(a)) => (a.pos, a.to_string()),
            Some(At::Pipe(p)) => (p.pos, p.to_string()),
            Some(At::Cmd(c)) => (c.args.first().map_or(0, |a| a.pos), c.to_string()),
        };
        let src = &*self.tmpl.src;
        let pos = pos.min(src.len());
        let line_start =
            src.as_bytes()[..pos].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let line = line_of(src, pos);
        Fail::Error(TemplateError::new(format!(
            "template: {name}:{line}:{}: executing {name:?} at <{ctx}>: {msg}",
            pos - line_start
        )))
    }

    fn push_out(&self, out: &mut String, s: &str) -> EResult<()> {
        if out.len() + s.len() > MAX_OUTPUT {
            return Err(self.errorf("template output too large"));
        }
        out.push_str(s);
        Ok(())
    }

    pub(super) fn walk_list(
        &mut self,
        dot: &Value,
        nodes: &'t [Node],
        out: &mut String,
    ) -> EResult<()> {
        for n in nodes {
            self.walk(dot, n, out)?;
        }
        Ok(())
    }

    fn walk(&mut self, dot: &Value, node: &'t Node, out: &mut String) -> EResult<()> {
        match node {
            Node::Text(s) => self.push_out(out, s),
            Node::Action(p) => {
                let v = self.eval_pipeline(dot, p)?;
                if p.decl.is_empty() {
                    let mut s = String::new();
                    match &v {
                        Value::Nil => s.push_str("<no value>"),
                        v => fmt_v(v, self.labels, &mut s),
                    }
                    self.push_out(out, &s)?;
                }
                Ok(())
            }
            Node::If(b) | Node::With(b) => {
                let mark = self.vars.len();
                let res = self.walk_if_with(dot, b, matches!(node, Node::With(_)), out);
                self.vars.truncate(mark);
                res
            }
            Node::Range(b) => {
                let mark = self.vars.len();
                let res = self.walk_range(dot, b, out);
                self.vars.truncate(mark);
                res
            }
            Node::Break => Err(Fail::Break),
            Node::Continue => Err(Fail::Continue),
        }
    }

    fn walk_if_with(
        &mut self,
        dot: &Value,
        b: &'t Branch,
        is_with: bool,
        out: &mut String,
    ) -> EResult<()> {
        let v = self.eval_pipeline(dot, &b.pipe)?;
        if truth(&v, self.labels) {
            if is_with {
                self.walk_list(&v, &b.list, out)
            } else {
                self.walk_list(dot, &b.list, out)
            }
        } else if let Some(e) = &b.else_list {
            self.walk_list(dot, e, out)
        } else {
            Ok(())
        }
    }

    /// Runs one range iteration; returns false when the loop must stop.
    fn range_once(
        &mut self,
        b: &'t Branch,
        mark: usize,
        key: Value,
        elem: Value,
        out: &mut String,
    ) -> EResult<bool> {
        self.iterations += 1;
        if self.iterations > MAX_ITERATIONS {
            return Err(self.errorf("too many range iterations"));
        }
        let n = b.pipe.decl.len();
        if n >= 1 {
            let top = self.vars.len();
            if b.pipe.is_assign {
                if n == 2 {
                    self.set_var(&b.pipe.decl[0], key)?;
                    self.set_var(&b.pipe.decl[1], elem.clone())?;
                } else {
                    self.set_var(&b.pipe.decl[0], elem.clone())?;
                }
            } else if top >= n {
                self.vars[top - 1].1 = elem.clone();
                if n == 2 {
                    self.vars[top - 2].1 = key;
                }
            }
        }
        let res = self.walk_list(&elem, &b.list, out);
        self.vars.truncate(mark);
        match res {
            Ok(()) | Err(Fail::Continue) => Ok(true),
            Err(Fail::Break) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn walk_range(&mut self, dot: &Value, b: &'t Branch, out: &mut String) -> EResult<()> {
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        let mut any = false;
        match &val {
            Value::List(l) => {
                for (i, e) in l.iter().enumerate() {
                    any = true;
                    if !self.range_once(b, mark, Value::Int(i as i64), e.clone(), out)? {
                        break;
                    }
                }
            }
            Value::Map(m) => {
                for (k, e) in m.iter() {
                    any = true;
                    if !self.range_once(b, mark, Value::Str(k.clone()), e.clone(), out)? {
                        break;
                    }
                }
            }
            Value::Dot => {
                let labels = self.labels;
                for l in labels.iter() {
                    any = true;
                    if !self.range_once(
                        b,
                        mark,
                        Value::Str(l.name.clone()),
                        Value::Str(l.value.clone()),
                        out,
                    )? {
                        break;
                    }
                }
            }
            Value::Int(n) | Value::Int64(n) => {
                if b.pipe.decl.len() > 1 {
                    self.at = Some(At::Pipe(&b.pipe));
                    return Err(self
                        .errorf(format!("can't use {n} to iterate over more than one variable")));
                }
                let wrap = |i: i64| {
                    if matches!(val, Value::Int(_)) {
                        Value::Int(i)
                    } else {
                        Value::Int64(i)
                    }
                };
                for i in 0..*n {
                    any = true;
                    if !self.range_once(b, mark, wrap(i), wrap(i), out)? {
                        break;
                    }
                }
            }
            Value::Nil => {}
            v => {
                self.at = Some(At::Pipe(&b.pipe));
                let mut s = String::new();
                fmt_v(v, self.labels, &mut s);
                return Err(self.errorf(format!("range can't iterate over {s}")));
            }
        }
        if !any {
            if let Some(e) = &b.else_list {
                return self.walk_list(dot, e, out);
            }
        }
        Ok(())
    }

    fn set_var(&mut self, name: &str, v: Value) -> EResult<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    fn var_value(&self, name: &str) -> EResult<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value, p: &'t Pipe) -> EResult<Value> {
        self.at = Some(At::Pipe(p));
        let mut value: Option<Value> = None;
        for c in &p.cmds {
            value = Some(self.eval_command(dot, c, value)?);
        }
        let v = value.unwrap_or(Value::Nil);
        for name in &p.decl {
            if p.is_assign {
                self.set_var(name, v.clone())?;
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn not_a_function(&self, first: &Arg, extra: usize, fin: &Option<Value>) -> EResult<()> {
        if extra > 0 || fin.is_some() {
            return Err(self.errorf(format!("can't give argument to non-function {first}")));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'t Cmd, fin: Option<Value>) -> EResult<Value> {
        let first = &cmd.args[0];
        let rest = &cmd.args[1..];
        match &first.kind {
            ArgKind::Field(names) => {
                return self.eval_field_chain(dot, dot.clone(), first, names, rest, fin)
            }
            ArgKind::Chain(inner, names) => {
                let recv = self.eval_arg(dot, None, inner)?;
                self.at = Some(At::Arg(first));
                return self.eval_field_chain(dot, recv, first, names, rest, fin);
            }
            ArgKind::Func(f) => return self.eval_function(dot, *f, first, rest, fin, Some(cmd)),
            ArgKind::Pipe(p) => {
                self.at = Some(At::Arg(first));
                self.not_a_function(first, rest.len(), &fin)?;
                return self.eval_pipeline(dot, p);
            }
            ArgKind::Var(name, fields) => {
                return self.eval_variable(dot, first, name, fields, rest, fin)
            }
            _ => {}
        }
        self.at = Some(At::Arg(first));
        self.not_a_function(first, rest.len(), &fin)?;
        match &first.kind {
            ArgKind::Bool(b) => Ok(Value::Bool(*b)),
            ArgKind::Dot => Ok(dot.clone()),
            ArgKind::Nil => Err(self.errorf("nil is not a command")),
            ArgKind::Num(n) => self.ideal_constant(n),
            ArgKind::Str { value, .. } => Ok(Value::Str(value.clone())),
            _ => Err(self.errorf(format!("can't evaluate command {first}"))),
        }
    }

    fn ideal_constant(&self, n: &Number) -> EResult<Value> {
        let t = &n.text;
        let is_rune = t.starts_with('\'');
        if n.float.is_some() && !is_hex_int(t) && !is_rune && t.contains(['.', 'e', 'E', 'p', 'P'])
        {
            return Ok(Value::Float(n.float.unwrap_or(0.0)));
        }
        match n.int {
            Some(i) => Ok(Value::Int(i)),
            None => Err(self.errorf(format!("{t} overflows int"))),
        }
    }

    fn eval_variable(
        &mut self,
        dot: &Value,
        node: &'t Arg,
        name: &str,
        fields: &'t [String],
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> EResult<Value> {
        self.at = Some(At::Arg(node));
        let v = self.var_value(name)?;
        if fields.is_empty() {
            self.not_a_function(node, args.len(), &fin)?;
            return Ok(v);
        }
        self.eval_field_chain(dot, v, node, fields, args, fin)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value,
        receiver: Value,
        node: &'t Arg,
        idents: &'t [String],
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> EResult<Value> {
        self.at = Some(At::Arg(node));
        let mut recv = receiver;
        let n = idents.len();
        for name in &idents[..n.saturating_sub(1)] {
            recv = self.eval_field(dot, name, node, &[], None, recv)?;
        }
        match idents.last() {
            Some(name) => self.eval_field(dot, name, node, args, fin, recv),
            None => Ok(recv),
        }
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        node: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
        recv: Value,
    ) -> EResult<Value> {
        let has_args = !args.is_empty() || fin.is_some();
        match recv {
            Value::Nil => Ok(Value::Nil),
            Value::Dot => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                Ok(Value::Str(self.labels.get(name).unwrap_or("").to_string()))
            }
            Value::Map(m) => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                Ok(m.get(name).cloned().unwrap_or(Value::Nil))
            }
            Value::Time(t) => self.time_method(dot, &t, name, node, args, fin),
            v => Err(self.errorf(format!("can't evaluate field {name} in type {}", v.type_name()))),
        }
    }

    fn time_method(
        &mut self,
        dot: &Value,
        t: &GoTime,
        name: &str,
        node: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> EResult<Value> {
        let want = usize::from(name == "Format");
        let got = args.len() + usize::from(fin.is_some());
        let known = matches!(
            name,
            "Unix"
                | "UnixMilli"
                | "UnixMicro"
                | "UnixNano"
                | "Year"
                | "Day"
                | "Hour"
                | "Minute"
                | "Second"
                | "Nanosecond"
                | "YearDay"
                | "Format"
                | "String"
                | "UTC"
                | "Local"
                | "IsZero"
        );
        if !known {
            return Err(self.errorf(format!("can't evaluate field {name} in type time.Time")));
        }
        if want != got {
            return Err(
                self.errorf(format!("wrong number of args for {name}: want {want} got {got}"))
            );
        }
        let c = t.civil();
        Ok(match name {
            "Unix" => Value::Int64(t.secs),
            "UnixMilli" => Value::Int64(t.unix_milli()),
            "UnixMicro" => Value::Int64(t.unix_micro()),
            "UnixNano" => Value::Int64(t.unix_nano()),
            "Year" => Value::Int(c.year),
            "Day" => Value::Int(c.day as i64),
            "Hour" => Value::Int(c.hour as i64),
            "Minute" => Value::Int(c.minute as i64),
            "Second" => Value::Int(c.second as i64),
            "Nanosecond" => Value::Int(t.nsec as i64),
            "YearDay" => Value::Int(c.yday as i64),
            "String" => Value::Str(time_string(t)),
            "UTC" | "Local" => Value::Time(t.to_utc()),
            "IsZero" => {
                Value::Bool(*t == GoTime::zero() || (t.secs == GoTime::zero().secs && t.nsec == 0))
            }
            _ => {
                let layout = match (args.first(), fin) {
                    (Some(a), _) => self.eval_arg(dot, Some(Ty::Str), a)?,
                    (None, Some(v)) => self.validate(v, Ty::Str)?,
                    (None, None) => Value::Str(String::new()),
                };
                self.at = Some(At::Arg(node));
                Value::Str(layout::format(t, as_str(&layout)))
            }
        })
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        f: Func,
        node: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
        cmd: Option<&'t Cmd>,
    ) -> EResult<Value> {
        self.at = Some(At::Arg(node));
        let (params, variadic) = f.sig();
        let num_in = args.len() + usize::from(fin.is_some());
        match variadic {
            Some(_) if num_in < params.len() => {
                return Err(self.errorf(format!(
                    "wrong number of args for {}: want at least {} got {}",
                    f.name(),
                    params.len(),
                    num_in
                )))
            }
            None if num_in != params.len() => {
                return Err(self.errorf(format!(
                    "wrong number of args for {}: want {} got {}",
                    f.name(),
                    params.len(),
                    num_in
                )))
            }
            _ => {}
        }
        if matches!(f, Func::And | Func::Or) {
            let want = matches!(f, Func::Or);
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(dot, Some(Ty::Any), a)?;
                if truth(&v, self.labels) == want {
                    return Ok(v);
                }
            }
            if let Some(fv) = fin {
                v = fv;
            }
            return Ok(v);
        }
        let ty_at = |i: usize| params.get(i).copied().or(variadic).unwrap_or(Ty::Any);
        let mut argv = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            argv.push(self.eval_arg(dot, Some(ty_at(i)), a)?);
        }
        if let Some(fv) = fin {
            argv.push(self.validate(fv, ty_at(args.len()))?);
        }
        match self.call(f, argv) {
            Ok(v) => Ok(v),
            Err(CallError::Plain(msg)) => {
                // Go reports the whole command (`<div 1 0>`), or the bare name when the
                // function is an argument of another command.
                self.at = Some(cmd.map_or(At::Arg(node), At::Cmd));
                Err(self.errorf(format!("error calling {}: {msg}", f.name())))
            }
        }
    }

    /// Evaluates an argument for a parameter of type `ty` (`None`: no conversion, as for the
    /// receiver of a chain).
    fn eval_arg(&mut self, dot: &Value, ty: Option<Ty>, arg: &'t Arg) -> EResult<Value> {
        self.at = Some(At::Arg(arg));
        let v = match &arg.kind {
            ArgKind::Dot => dot.clone(),
            ArgKind::Nil => {
                return match ty {
                    None | Some(Ty::Any) => Ok(Value::Nil),
                    Some(t) => Err(self.errorf(format!("cannot assign nil to {}", t.name()))),
                }
            }
            ArgKind::Field(names) => {
                self.eval_field_chain(dot, dot.clone(), arg, names, &[], None)?
            }
            ArgKind::Var(name, fields) => self.eval_variable(dot, arg, name, fields, &[], None)?,
            ArgKind::Pipe(p) => self.eval_pipeline(dot, p)?,
            ArgKind::Func(f) => self.eval_function(dot, *f, arg, &[], None, None)?,
            ArgKind::Chain(inner, names) => {
                let recv = self.eval_arg(dot, None, inner)?;
                self.at = Some(At::Arg(arg));
                self.eval_field_chain(dot, recv, arg, names, &[], None)?
            }
            ArgKind::Bool(b) => {
                return match ty {
                    None | Some(Ty::Any) => Ok(Value::Bool(*b)),
                    Some(t) => Err(self.literal_mismatch(t, arg)),
                }
            }
            ArgKind::Str { value, .. } => {
                return match ty {
                    None | Some(Ty::Any | Ty::Str) => Ok(Value::Str(value.clone())),
                    Some(t) => Err(self.literal_mismatch(t, arg)),
                }
            }
            ArgKind::Num(n) => {
                return match ty {
                    None | Some(Ty::Any) => self.ideal_constant(n),
                    Some(Ty::Int) => match n.int {
                        Some(i) => Ok(Value::Int(i)),
                        None => Err(self.literal_mismatch(Ty::Int, arg)),
                    },
                    Some(Ty::Float) => match n.float {
                        Some(f) => Ok(Value::Float(f)),
                        None => Err(self.literal_mismatch(Ty::Float, arg)),
                    },
                    Some(t) => Err(self.literal_mismatch(t, arg)),
                }
            }
        };
        match ty {
            None => Ok(v),
            Some(t) => self.validate(v, t),
        }
    }

    fn literal_mismatch(&self, ty: Ty, arg: &Arg) -> Fail {
        match ty {
            Ty::Str => self.errorf(format!("expected string; found {arg}")),
            Ty::Int => self.errorf(format!("expected integer; found {arg}")),
            Ty::Float => self.errorf(format!("expected float; found {arg}")),
            t => self.errorf(format!("can't handle {arg} for arg of type {}", t.name())),
        }
    }

    fn validate(&self, v: Value, ty: Ty) -> EResult<Value> {
        let ok = match (&v, ty) {
            (_, Ty::Any) => true,
            (Value::Nil, t) => {
                return Err(self.errorf(format!("invalid value; expected {}", t.name())))
            }
            (Value::Str(_), Ty::Str)
            | (Value::Int(_), Ty::Int)
            | (Value::Float(_), Ty::Float)
            | (Value::Time(_), Ty::Time) => true,
            _ => false,
        };
        if ok {
            Ok(v)
        } else {
            Err(self.errorf(format!(
                "wrong type for value; expected {}; got {}",
                ty.name(),
                v.type_name()
            )))
        }
    }
}
