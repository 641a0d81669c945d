//! Reads the KIR text format (see [`super`]) into [`KernelDef`]s.
//!
//! The parser builds the kernel directly, in one pass, the way
//! [`crate::KernelBuilder`] would: instructions are pushed in text order and
//! ids written in the text are the ids in the arenas. It checks only what the
//! data structures cannot represent (syntax, unknown names, a value defined
//! twice or never, declarations out of order); whether the kernel makes sense
//! (types, scoping, access kinds) is the verifier's job, so a `.kir` file can
//! hold a kernel that is wrong on purpose to test the verifier.
//!
//! Values may be used before their definition in the text (the verifier
//! reports that as a scoping error, with the entity named); the parser fills
//! the gap with a [`ValueDef::Undefined`] placeholder and fails only if the
//! value is never defined at all.

use std::collections::HashMap;

use cranelift_entity::{EntityRef, PrimaryMap};

use super::lexer::{tokenize, Pos, Tok, Token};
use super::ParseError;
use crate::entities::{Inst, Param, Region, Shared, Value, Var};
use crate::inst::{Access, BinaryOp, CmpOp, InstData, ShuffleKind, Special, UnaryOp};
use crate::kernel::{KernelDef, LaunchShape, Module, ParamData, ParamKind, SharedData, ValueData, ValueDef, VarData};
use crate::types::{Scalar, Type};

/// The largest value id the parser accepts. Ids may leave gaps, and each gap
/// costs a placeholder, so without a bound a one-line file naming `v4000000000`
/// would allocate gigabytes.
pub const MAX_VALUE_ID: u32 = 1 << 20;

/// How deeply `for`/`if` may nest. The parser recurses per level, and a bound
/// turns a pathological input into an error rather than a stack overflow.
pub const MAX_NESTING: usize = 200;

/// Parses a module: zero or more kernels.
pub fn parse_module(src: &str) -> Result<Module, ParseError> {
    let mut p = Parser::new(src)?;
    let mut module = Module::new();
    loop {
        p.skip_newlines();
        if p.peek() == &Tok::Eof {
            return Ok(module);
        }
        module.push(p.kernel()?);
    }
}

/// Parses exactly one kernel (comments and blank lines around it are fine).
pub fn parse_kernel(src: &str) -> Result<KernelDef, ParseError> {
    let mut p = Parser::new(src)?;
    p.skip_newlines();
    let k = p.kernel()?;
    p.skip_newlines();
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("end of input after the kernel (use `parse_module` for several kernels)"));
    }
    Ok(k)
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
    /// The first block whose closing `}` was indented differently from the
    /// line that opened it: `(open, close)`. When a block turns out to be
    /// unterminated, the brace actually missing is usually there, not at the
    /// outer block the end of input reaches.
    misaligned: Option<(Pos, Pos)>,
}

/// State of the kernel being parsed.
struct KernelState {
    k: KernelDef,
    /// Where each value was first used while still undefined, to report it
    /// if no definition ever comes.
    first_use: HashMap<Value, Pos>,
    /// Loop indices whose start value was not yet defined when the loop was
    /// parsed: `(index, start)`; their type is the start's, set at the end.
    index_types: Vec<(Value, Value)>,
    /// Set at the first instruction; declarations must come before it.
    seen_inst: bool,
}

impl Parser {
    fn new(src: &str) -> Result<Parser, ParseError> {
        Ok(Parser { toks: tokenize(src)?, at: 0, misaligned: None })
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.at].tok
    }

    fn pos(&self) -> Pos {
        self.toks[self.at].pos
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.at].clone();
        // The last token is Eof; stay on it.
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        self.pos().error(format!("expected {expected}, found {}", self.peek().describe()))
    }

    /// The column of the first token on `pos`'s line.
    fn line_indent(&self, pos: Pos) -> usize {
        // Tokens are in source order, so the line's first token is found by
        // bisection; it exists because `pos` is a token on that line.
        let first = self.toks.partition_point(|t| t.pos.line < pos.line);
        self.toks.get(first).map_or(pos.column, |t| t.pos.column)
    }

    fn skip_newlines(&mut self) {
        while self.peek() == &Tok::Newline {
            self.next();
        }
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Tok::Punct(q) if *q == p) {
            self.next();
            true
        } else {
            false
        }
    }

    fn punct(&mut self, p: &str) -> Result<(), ParseError> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{p}`")))
        }
    }

    fn end_of_line(&mut self) -> Result<(), ParseError> {
        match self.peek() {
            Tok::Newline => {
                self.next();
                Ok(())
            }
            Tok::Eof => Ok(()),
            _ => Err(self.unexpected("end of line")),
        }
    }

    /// Any word, with its position; `what` names it for the error message.
    fn word(&mut self, what: &str) -> Result<(String, Pos), ParseError> {
        match self.peek() {
            Tok::Word(w) => {
                let w = w.clone();
                let pos = self.next().pos;
                Ok((w, pos))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn keyword(&mut self, kw: &str) -> Result<(), ParseError> {
        match self.peek() {
            Tok::Word(w) if w == kw => {
                self.next();
                Ok(())
            }
            _ => Err(self.unexpected(&format!("`{kw}`"))),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, ParseError> {
        match self.peek() {
            Tok::Str(s) => {
                let s = s.clone();
                self.next();
                Ok(s)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn ty(&mut self) -> Result<Type, ParseError> {
        let (w, pos) = self.word("a type")?;
        Type::from_name(&w).ok_or_else(|| {
            let names: Vec<_> = Type::ALL.iter().map(|t| t.name()).collect();
            pos.error(format!("unknown type `{w}` (expected one of {})", names.join(", ")))
        })
    }

    /// An unsigned decimal integer of type `T`.
    fn number<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, ParseError> {
        let (w, pos) = self.word(what)?;
        if !w.bytes().all(|b| b.is_ascii_digit()) {
            return Err(pos.error(format!("expected {what}, found `{w}`")));
        }
        w.parse().map_err(|_| pos.error(format!("{what} `{w}` is out of range")))
    }

    /// `(a, b, c)` of `u32`s, for grid and block shapes.
    fn dims(&mut self, what: &str) -> Result<[u32; 3], ParseError> {
        self.punct("(")?;
        let mut d = [0; 3];
        for (i, slot) in d.iter_mut().enumerate() {
            if i > 0 {
                self.punct(",")?;
            }
            *slot = self.number(&format!("a {what} dimension"))?;
        }
        self.punct(")")?;
        Ok(d)
    }

    // ---- kernels ------------------------------------------------------

    fn kernel(&mut self) -> Result<KernelDef, ParseError> {
        self.misaligned = None;
        self.keyword("kernel")?;
        let name = match self.peek() {
            Tok::KernelName(n) => {
                let n = n.clone();
                self.next();
                n
            }
            _ => return Err(self.unexpected("a kernel name `@name`")),
        };
        self.keyword("grid")?;
        let grid = self.dims("grid")?;
        self.keyword("block")?;
        let block = self.dims("block")?;
        let open = self.pos();
        self.punct("{")?;
        self.end_of_line()?;
        let mut st = KernelState {
            k: KernelDef::new(name, LaunchShape::new(grid, block)),
            first_use: HashMap::new(),
            index_types: Vec::new(),
            seen_inst: false,
        };
        let body = st.k.body;
        self.region_body(&mut st, body, open, 1)?;
        self.end_of_line()?;
        st.finish()
    }

    /// Statements up to and including the `}` that closes the block opened
    /// at `open`.
    fn region_body(&mut self, st: &mut KernelState, region: Region, open: Pos, depth: usize) -> Result<(), ParseError> {
        let indent = self.line_indent(open);
        loop {
            self.skip_newlines();
            match self.peek() {
                Tok::Punct("}") => {
                    let close = self.next().pos;
                    if close.column != indent && self.misaligned.is_none() {
                        self.misaligned = Some((open, close));
                    }
                    return Ok(());
                }
                Tok::Eof => {
                    return Err(match self.misaligned {
                        Some((open, close)) => open.error(format!(
                            "unterminated block: this `{{` is never closed (the `}}` at line {}, column {} \
                             is indented like an outer block's)",
                            close.line, close.column
                        )),
                        None => open.error("unterminated block: this `{` is never closed"),
                    })
                }
                _ => self.statement(st, region, depth)?,
            }
        }
    }

    fn statement(&mut self, st: &mut KernelState, region: Region, depth: usize) -> Result<(), ParseError> {
        let (w, pos) = self.word("an instruction or declaration")?;
        if let Some(kind) = Entity::classify(&w) {
            if kind == Entity::Value {
                let v = self.value_name(st, &w, pos)?;
                return self.value_inst(st, region, v, pos);
            }
            if st.seen_inst {
                return Err(pos.error(format!("declaration of `{w}` after the first instruction; declare parameters, shared arrays and variables first")));
            }
            return self.declaration(st, kind, &w, pos);
        }
        st.seen_inst = true;
        match w.as_str() {
            "store" => {
                let buf = self.param_ref(st)?;
                let index = self.index(st)?;
                self.punct(",")?;
                let value = self.value_use(st)?;
                self.push_effect(st, region, InstData::Store { buf, index, value });
            }
            "shared_store" => {
                let array = self.shared_ref(st)?;
                let index = self.index(st)?;
                self.punct(",")?;
                let value = self.value_use(st)?;
                self.push_effect(st, region, InstData::SharedStore { array, index, value });
            }
            "var_set" => {
                let var = self.var_ref(st)?;
                self.punct(",")?;
                let value = self.value_use(st)?;
                self.push_effect(st, region, InstData::VarSet { var, value });
            }
            "barrier" => {
                self.push_effect(st, region, InstData::Barrier);
            }
            "for" => return self.for_loop(st, region, pos, depth),
            "if" => return self.if_else(st, region, pos, depth),
            "else" => return Err(pos.error("`else` must follow the `}` of an `if` on the same line: `} else {`")),
            _ if value_mnemonic(&w) => {
                return Err(pos.error(format!("`{w}` produces a value; write `vN: <type> = {w} ...`")))
            }
            _ => return Err(pos.error(format!("unknown instruction `{w}`"))),
        }
        self.end_of_line()
    }

    fn push_effect(&mut self, st: &mut KernelState, region: Region, data: InstData) -> Inst {
        let inst = st.k.insts.push(data);
        st.k.regions[region].push(inst);
        inst
    }

    fn check_depth(&self, pos: Pos, depth: usize) -> Result<(), ParseError> {
        if depth >= MAX_NESTING {
            return Err(pos.error(format!("control flow nested more than {MAX_NESTING} deep")));
        }
        Ok(())
    }

    /// `for vI in vS..vE step N {` body `}`.
    fn for_loop(&mut self, st: &mut KernelState, region: Region, pos: Pos, depth: usize) -> Result<(), ParseError> {
        self.check_depth(pos, depth)?;
        let (w, ipos) = self.word("a loop index value `vN`")?;
        let index = self.value_name(st, &w, ipos)?;
        self.keyword("in")?;
        let start = self.value_use(st)?;
        self.punct("..")?;
        let end = self.value_use(st)?;
        self.keyword("step")?;
        let (w, spos) = self.word("a loop step")?;
        let step: i64 = w.parse().map_err(|_| spos.error(format!("bad loop step `{w}` (expected an integer)")))?;
        let open = self.pos();
        self.punct("{")?;
        self.end_of_line()?;
        // Push the instruction before its body so instruction ids follow text
        // order, as the builder's do.
        let body = st.k.regions.push(Vec::new());
        let inst = self.push_effect(st, region, InstData::For { index, start, end, step, body });
        match st.k.values[start].def {
            ValueDef::Undefined => st.index_types.push((index, start)),
            _ => st.k.values[index].ty = st.k.values[start].ty,
        }
        st.define(index, ValueDef::LoopIndex(inst), ipos)?;
        self.region_body(st, body, open, depth + 1)?;
        self.end_of_line()
    }

    /// `if vC {` then `}` [`else {` else `}`].
    fn if_else(&mut self, st: &mut KernelState, region: Region, pos: Pos, depth: usize) -> Result<(), ParseError> {
        self.check_depth(pos, depth)?;
        let cond = self.value_use(st)?;
        let open = self.pos();
        self.punct("{")?;
        self.end_of_line()?;
        let then = st.k.regions.push(Vec::new());
        let inst = self.push_effect(st, region, InstData::If { cond, then, else_: None });
        self.region_body(st, then, open, depth + 1)?;
        if matches!(self.peek(), Tok::Word(w) if w == "else") {
            self.next();
            let open = self.pos();
            self.punct("{")?;
            self.end_of_line()?;
            let else_r = st.k.regions.push(Vec::new());
            if let InstData::If { else_, .. } = &mut st.k.insts[inst] {
                *else_ = Some(else_r);
            }
            self.region_body(st, else_r, open, depth + 1)?;
        }
        self.end_of_line()
    }

    /// `pN = buffer "name": ty[len] access`, `pN = scalar "name": ty`,
    /// `sN = shared ty[len]`, `xN = var ty`.
    fn declaration(&mut self, st: &mut KernelState, kind: Entity, w: &str, pos: Pos) -> Result<(), ParseError> {
        let id = kind.index(w).ok_or_else(|| pos.error(format!("bad {} name `{w}`", kind.what())))?;
        let expected = match kind {
            Entity::Param => st.k.params.len(),
            Entity::Shared => st.k.shared.len(),
            _ => st.k.vars.len(),
        };
        if id as usize != expected {
            let prefix = &w[..1];
            let msg = if (id as usize) < expected {
                format!("duplicate definition of {} `{w}`", kind.what())
            } else {
                format!("{} `{w}` declared out of order; expected `{prefix}{expected}` next", kind.what())
            };
            return Err(pos.error(msg));
        }
        self.punct("=")?;
        match kind {
            Entity::Param => {
                let (kw, kpos) = self.word("`buffer` or `scalar`")?;
                let name = self.string("a parameter name in quotes")?;
                self.punct(":")?;
                let ty = self.ty()?;
                let kind = match kw.as_str() {
                    "buffer" => {
                        self.punct("[")?;
                        let len = self.number("a buffer length")?;
                        self.punct("]")?;
                        let (a, apos) = self.word("an access kind (`read`, `write` or `readwrite`)")?;
                        let access = Access::from_name(&a).ok_or_else(|| {
                            apos.error(format!("unknown access `{a}` (expected `read`, `write` or `readwrite`)"))
                        })?;
                        ParamKind::Buffer { elem: ty, len, access }
                    }
                    "scalar" => ParamKind::Scalar { ty },
                    _ => {
                        return Err(kpos.error(format!("unknown parameter kind `{kw}` (expected `buffer` or `scalar`)")))
                    }
                };
                st.k.params.push(ParamData { name, kind });
            }
            Entity::Shared => {
                self.keyword("shared")?;
                let elem = self.ty()?;
                self.punct("[")?;
                let len = self.number("a shared array length")?;
                self.punct("]")?;
                st.k.shared.push(SharedData { elem, len });
            }
            _ => {
                self.keyword("var")?;
                let ty = self.ty()?;
                st.k.vars.push(VarData { ty });
            }
        }
        self.end_of_line()
    }

    /// `vN: ty = mnemonic operands`, after the `vN`.
    fn value_inst(&mut self, st: &mut KernelState, region: Region, v: Value, pos: Pos) -> Result<(), ParseError> {
        st.seen_inst = true;
        if st.k.values[v].def != ValueDef::Undefined {
            return Err(pos.error(format!("duplicate definition of value `{v}`")));
        }
        self.punct(":")?;
        let ty = self.ty()?;
        self.punct("=")?;
        let (m, mpos) = self.word("an instruction")?;
        let data = match m.as_str() {
            "const" => {
                let (text, cpos) = self.word(&format!("a {ty} constant"))?;
                let s = Scalar::parse(ty, &text).ok_or_else(|| cpos.error(format!("bad {ty} constant `{text}`")))?;
                InstData::Const(s)
            }
            "special" => {
                let (name, spos) = self.word("a special register name")?;
                let s = Special::from_name(&name).ok_or_else(|| {
                    spos.error(format!(
                        "unknown special register `{name}` (expected block_id, thread_id, block_dim or grid_dim with .x/.y/.z, or lane_id)"
                    ))
                })?;
                InstData::Special(s)
            }
            "param" => InstData::ScalarParam(self.param_ref(st)?),
            "fma" => {
                let a = self.value_use(st)?;
                self.punct(",")?;
                let b = self.value_use(st)?;
                self.punct(",")?;
                let c = self.value_use(st)?;
                InstData::Fma { a, b, c }
            }
            "select" => {
                let cond = self.value_use(st)?;
                self.punct(",")?;
                let if_true = self.value_use(st)?;
                self.punct(",")?;
                let if_false = self.value_use(st)?;
                InstData::Select { cond, if_true, if_false }
            }
            "cast" => InstData::Cast { to: ty, arg: self.value_use(st)? },
            "bitcast" => InstData::Bitcast { to: ty, arg: self.value_use(st)? },
            "load" => {
                let buf = self.param_ref(st)?;
                InstData::Load { buf, index: self.index(st)? }
            }
            "shared_load" => {
                let array = self.shared_ref(st)?;
                InstData::SharedLoad { array, index: self.index(st)? }
            }
            "var_get" => InstData::VarGet(self.var_ref(st)?),
            _ => {
                if let Some(op) = UnaryOp::ALL.into_iter().find(|o| o.name() == m) {
                    InstData::Unary { op, arg: self.value_use(st)? }
                } else if let Some(op) = BinaryOp::ALL.into_iter().find(|o| o.name() == m) {
                    let (lhs, rhs) = self.two_values(st)?;
                    InstData::Binary { op, lhs, rhs }
                } else if let Some(op) = CmpOp::ALL.into_iter().find(|o| o.name() == m) {
                    let (lhs, rhs) = self.two_values(st)?;
                    InstData::Cmp { op, lhs, rhs }
                } else if let Some(kind) = m.strip_prefix("shuffle.") {
                    let kind = ShuffleKind::ALL.into_iter().find(|k| k.name() == kind).ok_or_else(|| {
                        mpos.error(format!("unknown shuffle kind `{kind}` (expected idx, up, down or xor)"))
                    })?;
                    let (value, operand) = self.two_values(st)?;
                    self.punct(",")?;
                    let width = self.number("a shuffle width")?;
                    InstData::Shuffle { kind, value, operand, width }
                } else if m == "shuffle" {
                    return Err(
                        mpos.error("`shuffle` needs a kind: shuffle.idx, shuffle.up, shuffle.down or shuffle.xor")
                    );
                } else if is_effect_mnemonic(&m) {
                    return Err(mpos.error(format!("`{m}` produces no value; write it without `{v}: {ty} =`")));
                } else {
                    return Err(mpos.error(format!("unknown instruction `{m}`")));
                }
            }
        };
        let inst = st.k.insts.push(data);
        st.k.regions[region].push(inst);
        st.k.inst_result[inst] = Some(v);
        st.k.values[v].ty = ty;
        st.define(v, ValueDef::Result(inst), pos)?;
        self.end_of_line()
    }

    fn two_values(&mut self, st: &mut KernelState) -> Result<(Value, Value), ParseError> {
        let a = self.value_use(st)?;
        self.punct(",")?;
        let b = self.value_use(st)?;
        Ok((a, b))
    }

    /// `[vN]`.
    fn index(&mut self, st: &mut KernelState) -> Result<Value, ParseError> {
        self.punct("[")?;
        let v = self.value_use(st)?;
        self.punct("]")?;
        Ok(v)
    }

    /// Resolves a `vN` word to a value id, creating placeholders up to it.
    fn value_name(&mut self, st: &mut KernelState, w: &str, pos: Pos) -> Result<Value, ParseError> {
        let id = Entity::Value.index(w).ok_or_else(|| pos.error(format!("expected a value `vN`, found `{w}`")))?;
        if id > MAX_VALUE_ID {
            return Err(pos.error(format!("value id `{w}` is too large (the limit is v{MAX_VALUE_ID})")));
        }
        while st.k.values.len() <= id as usize {
            st.k.values.push(ValueData { ty: Type::I32, def: ValueDef::Undefined });
        }
        Ok(Value::new(id as usize))
    }

    /// A value operand.
    fn value_use(&mut self, st: &mut KernelState) -> Result<Value, ParseError> {
        let (w, pos) = self.word("a value `vN`")?;
        let v = self.value_name(st, &w, pos)?;
        if st.k.values[v].def == ValueDef::Undefined {
            st.first_use.entry(v).or_insert(pos);
        }
        Ok(v)
    }

    fn param_ref(&mut self, st: &KernelState) -> Result<Param, ParseError> {
        let id = self.entity_ref(Entity::Param, st.k.params.len())?;
        Ok(Param::new(id))
    }

    fn shared_ref(&mut self, st: &KernelState) -> Result<Shared, ParseError> {
        let id = self.entity_ref(Entity::Shared, st.k.shared.len())?;
        Ok(Shared::new(id))
    }

    fn var_ref(&mut self, st: &KernelState) -> Result<Var, ParseError> {
        let id = self.entity_ref(Entity::Var, st.k.vars.len())?;
        Ok(Var::new(id))
    }

    /// A use of a declared parameter, shared array or variable.
    fn entity_ref(&mut self, kind: Entity, declared: usize) -> Result<usize, ParseError> {
        let (w, pos) = self.word(&format!("a {} `{}N`", kind.what(), kind.prefix()))?;
        match kind.index(&w) {
            Some(id) if (id as usize) < declared => Ok(id as usize),
            Some(_) => Err(pos.error(format!("unknown {} `{w}`", kind.what()))),
            None => Err(pos.error(format!("expected a {} `{}N`, found `{w}`", kind.what(), kind.prefix()))),
        }
    }
}

impl KernelState {
    fn define(&mut self, v: Value, def: ValueDef, pos: Pos) -> Result<(), ParseError> {
        if self.k.values[v].def != ValueDef::Undefined {
            return Err(pos.error(format!("duplicate definition of value `{v}`")));
        }
        self.k.values[v].def = def;
        Ok(())
    }

    fn finish(mut self) -> Result<KernelDef, ParseError> {
        let mut never_defined: Vec<(Pos, Value)> = self
            .first_use
            .iter()
            .filter(|(v, _)| self.k.values[**v].def == ValueDef::Undefined)
            .map(|(v, pos)| (*pos, *v))
            .collect();
        never_defined.sort();
        if let Some((pos, v)) = never_defined.first() {
            return Err(pos.error(format!("use of undefined value `{v}`")));
        }
        for (index, start) in std::mem::take(&mut self.index_types) {
            self.k.values[index].ty = self.k.values[start].ty;
        }
        renumber_regions(&mut self.k);
        Ok(self.k)
    }
}

/// Renumbers regions in the order [`crate::KernelBuilder`] allocates them, so
/// a parsed kernel equals the built one field for field. The builder
/// allocates an `if`'s then and else regions together, before filling either,
/// and fills each region completely before moving to the next instruction;
/// the parser cannot allocate that way itself, because it learns that an
/// `else` exists only after the then-region is parsed.
fn renumber_regions(k: &mut KernelDef) {
    let mut old = std::mem::take(&mut k.regions);
    let mut new: PrimaryMap<Region, Vec<Inst>> = PrimaryMap::with_capacity(old.len());
    let body = new.push(Vec::new());
    copy_region(k, &mut old, &mut new, k.body, body);
    k.regions = new;
    k.body = body;
}

/// Moves region `from` of `old` into `to` of `new`, allocating nested regions
/// depth-first. Recursion depth is bounded by [`MAX_NESTING`].
fn copy_region(
    k: &mut KernelDef,
    old: &mut PrimaryMap<Region, Vec<Inst>>,
    new: &mut PrimaryMap<Region, Vec<Inst>>,
    from: Region,
    to: Region,
) {
    let insts = std::mem::take(&mut old[from]);
    for &inst in &insts {
        new[to].push(inst);
        let mut nested = Vec::new();
        match &mut k.insts[inst] {
            InstData::For { body, .. } => {
                let r = new.push(Vec::new());
                nested.push((std::mem::replace(body, r), r));
            }
            InstData::If { then, else_, .. } => {
                let t = new.push(Vec::new());
                nested.push((std::mem::replace(then, t), t));
                if let Some(e) = else_ {
                    let r = new.push(Vec::new());
                    nested.push((std::mem::replace(e, r), r));
                }
            }
            _ => {}
        }
        for (from, to) in nested {
            copy_region(k, old, new, from, to);
        }
    }
}

/// The kinds of numbered entity a statement can start with.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Entity {
    Value,
    Param,
    Shared,
    Var,
}

impl Entity {
    /// The entity kind a word names by its prefix, if it looks like an id.
    fn classify(w: &str) -> Option<Entity> {
        let kind = match w.as_bytes().first()? {
            b'v' => Entity::Value,
            b'p' => Entity::Param,
            b's' => Entity::Shared,
            b'x' => Entity::Var,
            _ => return None,
        };
        let digits = &w[1..];
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(kind)
    }

    fn prefix(self) -> char {
        match self {
            Entity::Value => 'v',
            Entity::Param => 'p',
            Entity::Shared => 's',
            Entity::Var => 'x',
        }
    }

    fn what(self) -> &'static str {
        match self {
            Entity::Value => "value",
            Entity::Param => "parameter",
            Entity::Shared => "shared array",
            Entity::Var => "variable",
        }
    }

    /// The index in a canonical id word (`v12`, not `v012`) of this kind.
    fn index(self, w: &str) -> Option<u32> {
        let digits = w.strip_prefix(self.prefix())?;
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
        {
            return None;
        }
        digits.parse().ok()
    }
}

fn value_mnemonic(m: &str) -> bool {
    matches!(m, "const" | "special" | "param" | "fma" | "select" | "cast" | "load" | "shared_load" | "var_get")
        || m == "shuffle"
        || m.starts_with("shuffle.")
        || UnaryOp::ALL.iter().any(|o| o.name() == m)
        || BinaryOp::ALL.iter().any(|o| o.name() == m)
        || CmpOp::ALL.iter().any(|o| o.name() == m)
}

fn is_effect_mnemonic(m: &str) -> bool {
    matches!(m, "store" | "shared_store" | "var_set" | "barrier" | "for" | "if")
}
