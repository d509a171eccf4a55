//! The parser of `{ expression }` text: recursive descent with one level per C precedence
//! tier, bounded nesting, and errors that carry the byte offset for the loader's column.

use super::expr::{BinOp, Expr, ExprError, FUNCTIONS, UnOp};

/// Parses a whole expression (without its braces).
pub(super) fn parse(text: &str) -> Result<Expr, ExprError> {
    let mut parser = Parser {
        text: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let expr = parser.ternary()?;
    parser.skip_space();
    if parser.pos < parser.text.len() {
        return Err(parser.error("an operator or the end"));
    }
    Ok(expr)
}

/// Recursive-descent parser over the expression bytes.
struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    /// Nesting depth, bounded so hostile input cannot overflow the call stack.
    depth: usize,
}

/// Binary operators by precedence level, lowest first.
const LEVELS: &[&[(&str, BinOp)]] = &[
    &[("||", BinOp::Or)],
    &[("&&", BinOp::And)],
    &[("|", BinOp::BitOr)],
    &[("^", BinOp::BitXor)],
    &[("&", BinOp::BitAnd)],
    &[("==", BinOp::Eq), ("!=", BinOp::Ne)],
    &[
        ("<=", BinOp::Le),
        (">=", BinOp::Ge),
        ("<", BinOp::Lt),
        (">", BinOp::Gt),
    ],
    &[("<<", BinOp::Shl), (">>", BinOp::Shr)],
    &[("+", BinOp::Add), ("-", BinOp::Sub)],
    &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Rem)],
];

/// Deepest nesting of parentheses, unary operators and ternaries accepted.
const MAX_NESTING: usize = 64;

impl Parser<'_> {
    fn error(&self, expected: &'static str) -> ExprError {
        ExprError::Syntax {
            offset: self.pos,
            expected,
        }
    }

    fn skip_space(&mut self) {
        while self.text.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.text[self.pos..].starts_with(token.as_bytes()) {
            // `|` must not take the first half of `||`, nor `&` of `&&`, nor `<` of `<<`.
            let next = self.text.get(self.pos + token.len()).copied();
            if token.len() == 1 && next == Some(token.as_bytes()[0]) && "|&<>".contains(token) {
                return false;
            }
            self.pos += token.len();
            return true;
        }
        false
    }

    fn nest(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(ExprError::TooDeep);
        }
        Ok(())
    }

    fn ternary(&mut self) -> Result<Expr, ExprError> {
        self.nest()?;
        let condition = self.level(0)?;
        let expr = if self.eat("?") {
            let then = self.ternary()?;
            if !self.eat(":") {
                return Err(self.error("':'"));
            }
            let otherwise = self.ternary()?;
            Expr::Select(Box::new(condition), Box::new(then), Box::new(otherwise))
        } else {
            condition
        };
        self.depth -= 1;
        Ok(expr)
    }

    fn level(&mut self, level: usize) -> Result<Expr, ExprError> {
        let Some(ops) = LEVELS.get(level) else {
            return self.unary();
        };
        let mut left = self.level(level + 1)?;
        'outer: loop {
            for (token, op) in *ops {
                if self.eat(token) {
                    let right = self.level(level + 1)?;
                    left = Expr::Binary(*op, Box::new(left), Box::new(right));
                    continue 'outer;
                }
            }
            return Ok(left);
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        let op = if self.eat("-") {
            UnOp::Neg
        } else if self.eat("!") {
            UnOp::Not
        } else if self.eat("~") {
            UnOp::BitNot
        } else if self.eat("+") {
            return self.unary();
        } else {
            return self.primary();
        };
        self.nest()?;
        let operand = self.unary()?;
        self.depth -= 1;
        Ok(Expr::Unary(op, Box::new(operand)))
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        self.skip_space();
        if self.eat("(") {
            let inner = self.ternary()?;
            if !self.eat(")") {
                return Err(self.error("')'"));
            }
            return Ok(inner);
        }
        match self.text.get(self.pos) {
            Some(c) if c.is_ascii_digit() || *c == b'.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => self.name_or_call(),
            _ => Err(self.error("a number, a name or '('")),
        }
    }

    fn number(&mut self) -> Result<Expr, ExprError> {
        let start = self.pos;
        let rest = &self.text[start..];
        if rest.starts_with(b"0x") || rest.starts_with(b"0X") {
            let digits = rest[2..]
                .iter()
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            let text = std::str::from_utf8(&rest[2..2 + digits]).unwrap_or("");
            let value = u64::from_str_radix(text, 16).map_err(|_| self.error("hex digits"))?;
            self.pos += 2 + digits;
            return Ok(Expr::Number(value as f64));
        }
        let mut end = start;
        while let Some(c) = self.text.get(end) {
            let exponent_sign = (*c == b'-' || *c == b'+')
                && end > start
                && matches!(self.text[end - 1], b'e' | b'E');
            if c.is_ascii_digit() || *c == b'.' || *c == b'e' || *c == b'E' || exponent_sign {
                end += 1;
            } else {
                break;
            }
        }
        let text = std::str::from_utf8(&self.text[start..end]).unwrap_or("");
        let value = text.parse::<f64>().map_err(|_| self.error("a number"))?;
        self.pos = end;
        Ok(Expr::Number(value))
    }

    fn name_or_call(&mut self) -> Result<Expr, ExprError> {
        let start = self.pos;
        while self
            .text
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
        {
            self.pos += 1;
        }
        let name = String::from_utf8_lossy(&self.text[start..self.pos]).into_owned();
        if !self.eat("(") {
            return Ok(if name == "timeNow" {
                Expr::Time
            } else {
                Expr::Name(name)
            });
        }
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push(self.ternary()?);
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return Err(self.error("',' or ')'"));
                }
            }
        }
        match FUNCTIONS.iter().position(|(known, _)| *known == name) {
            Some(index) if FUNCTIONS[index].1 == args.len() => Ok(Expr::Call(index, args)),
            Some(_) => Err(self.error("the function's number of arguments")),
            None => Err(ExprError::UnsupportedFunction { name }),
        }
    }
}
