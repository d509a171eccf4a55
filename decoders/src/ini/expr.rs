//! TunerStudio `{ expression }` text: parsed once at load into a postfix program that is then
//! evaluated per block over a slice of channel values, without allocating.
//!
//! Grammar (C precedence, lowest first): `?:`, `||`, `&&`, `|`, `^`, `&`, `== !=`,
//! `< <= > >=`, `<< >>`, `+ -`, `* / %`, unary `- ! ~`, then literals (decimal, `0x` hex),
//! names, `timeNow`, calls and parentheses. Truth is "not zero"; comparisons and logic give 0
//! or 1; bit operators work on the values truncated to `i64`. Both arms of `?:` and both sides
//! of `&&`/`||` are evaluated (nothing has side effects), which keeps the program branch-free.
//! Division by zero follows IEEE (inf or NaN), never a panic.

/// Functions a computed channel may call; anything else makes the channel unsupported.
pub const FUNCTIONS: &[(&str, usize)] = &[
    ("abs", 1),
    ("round", 1),
    ("floor", 1),
    ("ceil", 1),
    ("sqrt", 1),
    ("log", 1),
    ("log10", 1),
    ("exp", 1),
    ("sin", 1),
    ("cos", 1),
    ("tan", 1),
    ("asin", 1),
    ("acos", 1),
    ("atan", 1),
    ("isNaN", 1),
    ("pow", 2),
    ("min", 2),
    ("max", 2),
];

/// Deepest value stack a program may need; deeper expressions are refused at compile time so
/// evaluation can use a fixed array.
pub const MAX_STACK: usize = 32;

/// Why an expression was refused; `offset` is the byte position inside the expression text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// The text does not follow the grammar.
    #[error("expression syntax at column {}: {expected}", offset + 1)]
    Syntax {
        /// Where parsing stopped.
        offset: usize,
        /// What was wanted there.
        expected: &'static str,
    },
    /// A call to a function this evaluator does not have (see [`FUNCTIONS`]).
    #[error("unsupported function {name}()")]
    UnsupportedFunction {
        /// The function name.
        name: String,
    },
    /// The expression nests deeper than [`MAX_STACK`].
    #[error("expression nests deeper than {MAX_STACK}")]
    TooDeep,
}

/// A parsed expression tree; names are still text until [`Expr::compile`] resolves them.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A numeric literal.
    Number(f64),
    /// The current time in seconds (`timeNow`).
    Time,
    /// Another channel by name.
    Name(String),
    /// A unary operator.
    Unary(UnOp, Box<Expr>),
    /// A binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `condition ? then : otherwise`.
    Select(Box<Expr>, Box<Expr>, Box<Expr>),
    /// A call to one of [`FUNCTIONS`] (index into it).
    Call(usize, Vec<Expr>),
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `!x`
    Not,
    /// `~x`
    BitNot,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `a || b`
    Or,
    /// `a && b`
    And,
    /// `a | b`
    BitOr,
    /// `a ^ b`
    BitXor,
    /// `a & b`
    BitAnd,
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
    /// `a << b`
    Shl,
    /// `a >> b`
    Shr,
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a % b` (sign of `a`)
    Rem,
}

/// One step of a compiled program.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Const(f64),
    Time,
    Load(u32),
    Unary(UnOp),
    Binary(BinOp),
    Select,
    Call(usize),
}

/// A compiled expression: postfix steps over slots of the channel value buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    ops: Vec<Op>,
}

impl Expr {
    /// Parses `text` (without the braces).
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        super::expr_parse::parse(text)
    }

    /// Every channel name the expression reads, in order of appearance (with repeats).
    pub fn names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit_names(&mut out);
        out
    }

    fn visit_names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Name(name) => out.push(name),
            Self::Unary(_, a) => a.visit_names(out),
            Self::Binary(_, a, b) => {
                a.visit_names(out);
                b.visit_names(out);
            }
            Self::Select(c, a, b) => {
                c.visit_names(out);
                a.visit_names(out);
                b.visit_names(out);
            }
            Self::Call(_, args) => args.iter().for_each(|arg| arg.visit_names(out)),
            Self::Number(_) | Self::Time => {}
        }
    }

    /// Compiles into a program; `slot` maps each name to its index in the value buffer
    /// (`None` for a name it does not know, which is returned as the error's `Err(name)`).
    pub fn compile(
        &self,
        slot: &mut dyn FnMut(&str) -> Option<u32>,
    ) -> Result<Program, Result<ExprError, String>> {
        let mut ops = Vec::new();
        self.emit(slot, &mut ops)?;
        let program = Program { ops };
        if program.max_depth() > MAX_STACK {
            return Err(Ok(ExprError::TooDeep));
        }
        Ok(program)
    }

    fn emit(
        &self,
        slot: &mut dyn FnMut(&str) -> Option<u32>,
        ops: &mut Vec<Op>,
    ) -> Result<(), Result<ExprError, String>> {
        match self {
            Self::Number(value) => ops.push(Op::Const(*value)),
            Self::Time => ops.push(Op::Time),
            Self::Name(name) => ops.push(Op::Load(slot(name).ok_or_else(|| Err(name.clone()))?)),
            Self::Unary(op, a) => {
                a.emit(slot, ops)?;
                ops.push(Op::Unary(*op));
            }
            Self::Binary(op, a, b) => {
                a.emit(slot, ops)?;
                b.emit(slot, ops)?;
                ops.push(Op::Binary(*op));
            }
            Self::Select(c, a, b) => {
                c.emit(slot, ops)?;
                a.emit(slot, ops)?;
                b.emit(slot, ops)?;
                ops.push(Op::Select);
            }
            Self::Call(function, args) => {
                for arg in args {
                    arg.emit(slot, ops)?;
                }
                ops.push(Op::Call(*function));
            }
        }
        Ok(())
    }

    /// The value if the expression reads no channel and no time (scale and translate fields).
    pub fn constant(&self) -> Option<f64> {
        let program = self
            .compile(&mut |_| None)
            .ok()
            .filter(|p| !p.ops.contains(&Op::Time))?;
        Some(program.evaluate(&[], 0.0))
    }
}

impl Program {
    /// Evaluates over `values` (indexed by the slots given at compile time) at `time_s`
    /// seconds. A slot past the end of `values` reads as NaN; never panics or allocates.
    pub fn evaluate(&self, values: &[f64], time_s: f64) -> f64 {
        let mut stack = [0.0f64; MAX_STACK];
        let mut top = 0usize;
        for op in &self.ops {
            let (take, value) = match *op {
                Op::Const(v) => (0, v),
                Op::Time => (0, time_s),
                Op::Load(slot) => (0, values.get(slot as usize).copied().unwrap_or(f64::NAN)),
                Op::Unary(op) => (1, unary(op, peek(&stack, top, 1))),
                Op::Binary(op) => (2, binary(op, peek(&stack, top, 2), peek(&stack, top, 1))),
                Op::Select => {
                    let (c, a, b) = (
                        peek(&stack, top, 3),
                        peek(&stack, top, 2),
                        peek(&stack, top, 1),
                    );
                    (3, if c != 0.0 { a } else { b })
                }
                Op::Call(function) => {
                    let arity = FUNCTIONS.get(function).map_or(1, |(_, n)| *n);
                    let a = peek(&stack, top, arity);
                    let b = peek(&stack, top, 1);
                    (arity, call(function, a, b))
                }
            };
            top = top.saturating_sub(take);
            if let Some(cell) = stack.get_mut(top) {
                *cell = value;
                top += 1;
            }
        }
        peek(&stack, top, 1)
    }

    /// The channel slots the program reads.
    pub fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.ops.iter().filter_map(|op| match op {
            Op::Load(slot) => Some(*slot),
            _ => None,
        })
    }

    fn max_depth(&self) -> usize {
        let mut depth = 0usize;
        let mut max = 0usize;
        for op in &self.ops {
            let take = match op {
                Op::Const(_) | Op::Time | Op::Load(_) => 0,
                Op::Unary(_) => 1,
                Op::Binary(_) => 2,
                Op::Select => 3,
                Op::Call(f) => FUNCTIONS.get(*f).map_or(1, |(_, n)| *n),
            };
            depth = depth.saturating_sub(take) + 1;
            max = max.max(depth);
        }
        max
    }
}

/// The value `back` places below the top (1 = top); NaN if the stack is shorter.
fn peek(stack: &[f64; MAX_STACK], top: usize, back: usize) -> f64 {
    top.checked_sub(back)
        .and_then(|i| stack.get(i))
        .copied()
        .unwrap_or(f64::NAN)
}

fn truth(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}

/// Truncation to `i64` for bit operators; NaN becomes 0 and out-of-range values saturate.
fn int(value: f64) -> i64 {
    value as i64
}

fn unary(op: UnOp, a: f64) -> f64 {
    match op {
        UnOp::Neg => -a,
        UnOp::Not => truth(a == 0.0),
        UnOp::BitNot => !int(a) as f64,
    }
}

fn binary(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Or => truth(a != 0.0 || b != 0.0),
        BinOp::And => truth(a != 0.0 && b != 0.0),
        BinOp::BitOr => (int(a) | int(b)) as f64,
        BinOp::BitXor => (int(a) ^ int(b)) as f64,
        BinOp::BitAnd => (int(a) & int(b)) as f64,
        BinOp::Eq => truth(a == b),
        BinOp::Ne => truth(a != b),
        BinOp::Lt => truth(a < b),
        BinOp::Le => truth(a <= b),
        BinOp::Gt => truth(a > b),
        BinOp::Ge => truth(a >= b),
        // Shift counts outside 0..64 give 0 instead of overflowing.
        BinOp::Shl => u32::try_from(int(b))
            .ok()
            .and_then(|n| int(a).checked_shl(n))
            .map_or(0.0, |v| v as f64),
        BinOp::Shr => u32::try_from(int(b))
            .ok()
            .and_then(|n| int(a).checked_shr(n))
            .map_or(0.0, |v| v as f64),
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Rem => a % b,
    }
}

fn call(function: usize, a: f64, b: f64) -> f64 {
    match FUNCTIONS.get(function).map(|(name, _)| *name) {
        Some("abs") => a.abs(),
        Some("round") => a.round(),
        Some("floor") => a.floor(),
        Some("ceil") => a.ceil(),
        Some("sqrt") => a.sqrt(),
        Some("log") => a.ln(),
        Some("log10") => a.log10(),
        Some("exp") => a.exp(),
        Some("sin") => a.sin(),
        Some("cos") => a.cos(),
        Some("tan") => a.tan(),
        Some("asin") => a.asin(),
        Some("acos") => a.acos(),
        Some("atan") => a.atan(),
        Some("isNaN") => truth(a.is_nan()),
        Some("pow") => a.powf(b),
        Some("min") => a.min(b),
        Some("max") => a.max(b),
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str, names: &[(&str, f64)], time: f64) -> f64 {
        let expr = Expr::parse(text).expect("test input is valid");
        let values: Vec<f64> = names.iter().map(|(_, v)| *v).collect();
        let program = expr
            .compile(&mut |name| names.iter().position(|(n, _)| *n == name).map(|i| i as u32))
            .expect("test input is valid");
        program.evaluate(&values, time)
    }

    #[test]
    fn deconstruct_precedence_and_operators() {
        assert_eq!(eval("1 + 2 * 3", &[], 0.0), 7.0);
        assert_eq!(eval("(1 + 2) * 3", &[], 0.0), 9.0);
        assert_eq!(eval("0x10 | 1", &[], 0.0), 17.0);
        assert_eq!(eval("1 << 4 >> 2", &[], 0.0), 4.0);
        assert_eq!(eval("7 & 3 ^ 1", &[], 0.0), 2.0);
        assert_eq!(eval("2 < 3 && 3 <= 3 || 0", &[], 0.0), 1.0);
        assert_eq!(eval("!0 + ~0", &[], 0.0), 0.0);
        assert_eq!(eval("-2.5e1 % 7", &[], 0.0), -4.0);
        assert_eq!(eval("1 ? 2 : 0 ? 3 : 4", &[], 0.0), 2.0);
        assert_eq!(eval("0 ? 2 : 0 ? 3 : 4", &[], 0.0), 4.0);
    }

    #[test]
    fn names_time_and_functions() {
        let names = [("rpm", 3000.0), ("coolantRaw", 130.0)];
        assert_eq!(eval("rpm ? (60000.0 / rpm) : 0", &names, 0.0), 20.0);
        assert_eq!(eval("(coolantRaw - 40) * 1.8 + 32", &names, 0.0), 194.0);
        assert_eq!(eval("timeNow", &[], 12.5), 12.5);
        assert_eq!(eval("round(abs(-2.6)) + max(1, 2)", &[], 0.0), 5.0);
        assert_eq!(eval("pow(2, 10)", &[], 0.0), 1024.0);
    }

    #[test]
    fn constant_only_without_names_or_time() {
        assert_eq!(
            Expr::parse("100 / 2")
                .expect("test input is valid")
                .constant(),
            Some(50.0)
        );
        assert_eq!(
            Expr::parse("x * 2")
                .expect("test input is valid")
                .constant(),
            None
        );
        assert_eq!(
            Expr::parse("timeNow")
                .expect("test input is valid")
                .constant(),
            None
        );
    }

    #[test]
    fn unknown_names_and_functions_are_reported() {
        let expr = Expr::parse("a + b").expect("test input is valid");
        assert_eq!(
            expr.compile(&mut |n| (n == "a").then_some(0)),
            Err(Err("b".to_owned()))
        );
        assert_eq!(
            Expr::parse("smoothBasic(x, 75)"),
            Err(ExprError::UnsupportedFunction {
                name: "smoothBasic".into()
            })
        );
    }

    #[test]
    fn truncated_and_broken_text_is_an_error_not_a_panic() {
        for text in [
            "", "1 +", "(1", "a ?", "a ? 1", "1 2", "abs(", "0x", "pow(1)", "#",
        ] {
            assert!(Expr::parse(text).is_err(), "{text:?}");
        }
        let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        assert_eq!(Expr::parse(&deep), Err(ExprError::TooDeep));
        let wide = (0..40).map(|_| "(1+").collect::<String>() + "1" + &")".repeat(40);
        assert!(
            Expr::parse(&wide)
                .expect("test input is valid")
                .compile(&mut |_| None)
                .is_err()
        );
    }

    #[test]
    fn missing_slots_read_as_nan() {
        let program = Expr::parse("a + 1")
            .expect("test input is valid")
            .compile(&mut |_| Some(9))
            .expect("test input is valid");
        assert!(program.evaluate(&[1.0], 0.0).is_nan());
    }
}
