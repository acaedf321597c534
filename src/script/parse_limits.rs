//! Bounds on compiling one script, so that no file can hold up start-up or a reload.
//!
//! Rhai's parser looks names up by linear scans: every variable reference walks the
//! functions defined so far and the variables in scope, and the optimizer walks them again.
//! Compile time therefore grows with the square of a script's functions and variables (20,000
//! one-line functions, under the size cap, take minutes). Every parse by a sandboxed engine
//! counts its `fn` and `let`/`const` keywords and checks the clock at each token; past a
//! limit the next token becomes a lexing error, which ends the parse at that position with
//! a sentence saying what to change.
//!
//! The engine's token callback has no per-parse state, so this keeps it per thread, keyed by
//! the tokenizer's control block, which each parse allocates afresh (a library compiled while
//! its importer is being parsed is a separate parse with its own counts).

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use rhai::{Engine, LexError, Position, Token, TokenizeState, TokenizerControlBlock};

/// Named functions one script may define (Rhai's own limit, which also counts closures, is set
/// to the same number).
pub(super) const MAX_FUNCTIONS: usize = 256;
/// `let` and `const` declarations in one script, all blocks together.
pub(super) const MAX_DECLARATIONS: usize = 1_000;
/// Wall time one parse may take. Real tools compile in well under a millisecond.
pub(super) const MAX_COMPILE_TIME: Duration = Duration::from_secs(2);

/// One parse in progress on this thread.
struct Parse {
    control: Weak<RefCell<TokenizerControlBlock>>,
    started: Instant,
    functions: usize,
    declarations: usize,
    /// Set once a limit is passed: every later token is this error too.
    refused: Option<LexError>,
}

thread_local! {
    static PARSES: RefCell<Vec<Parse>> = const { RefCell::new(Vec::new()) };
}

/// Make every parse by `engine` keep to the limits.
pub(super) fn install(engine: &mut Engine) {
    engine.set_max_functions(MAX_FUNCTIONS);
    // The callback API is marked volatile (it may change between Rhai versions), not deprecated.
    #[allow(deprecated)]
    engine.on_parse_token(|token, _pos: Position, state: &TokenizeState| check(token, state));
}

fn check(token: Token, state: &TokenizeState) -> Token {
    PARSES.with_borrow_mut(|parses| {
        // A parse whose control block is gone has finished; an entry's weak reference keeps
        // that block's address from being reused while the entry lives.
        parses.retain(|p| p.control.strong_count() > 0);
        let control = Rc::as_ptr(&state.tokenizer_control);
        let parse = match parses.iter().position(|p| p.control.as_ptr() == control) {
            Some(i) => &mut parses[i],
            None => {
                parses.push(Parse {
                    control: Rc::downgrade(&state.tokenizer_control),
                    started: Instant::now(),
                    functions: 0,
                    declarations: 0,
                    refused: None,
                });
                let last = parses.len() - 1;
                &mut parses[last]
            }
        };
        if let Some(refused) = &parse.refused {
            return Token::LexError(Box::new(refused.clone()));
        }
        let refusal = match token {
            Token::Fn => {
                parse.functions += 1;
                (parse.functions > MAX_FUNCTIONS).then(|| {
                    format!(
                        "this script defines more than {MAX_FUNCTIONS} functions; split it into \
                         tools or libraries (lib/*.rhai) of fewer"
                    )
                })
            }
            Token::Let | Token::Const => {
                parse.declarations += 1;
                (parse.declarations > MAX_DECLARATIONS).then(|| {
                    format!(
                        "this script declares more than {MAX_DECLARATIONS} variables (let/const); \
                         keep values in arrays or maps, or split the script"
                    )
                })
            }
            _ => None,
        }
        .or_else(|| {
            (parse.started.elapsed() > MAX_COMPILE_TIME).then(|| {
                format!(
                    "compiling this script took more than {} s (Rhai's parser slows with the \
                     number of names in a script); split it into smaller tools or libraries",
                    MAX_COMPILE_TIME.as_secs()
                )
            })
        });
        match refusal {
            Some(message) => {
                let error = LexError::Runtime(message);
                parse.refused = Some(error.clone());
                Token::LexError(Box::new(error))
            }
            None => token,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn compile(text: &str) -> Result<(), String> {
        let engine = crate::script::sandbox::engine(Arc::new(|_| {}));
        engine.compile(text).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn functions_up_to_the_limit_compile_and_one_more_is_refused() {
        let fns = |n: usize| -> String { (0..n).map(|i| format!("fn f{i}(x) {{ x }}\n")).collect() };
        compile(&fns(MAX_FUNCTIONS)).unwrap();
        let err = compile(&fns(MAX_FUNCTIONS + 1)).unwrap_err();
        assert!(err.contains(&format!("more than {MAX_FUNCTIONS} functions")), "{err}");
        assert!(err.contains(&format!("line {}", MAX_FUNCTIONS + 1)), "{err}");
    }

    #[test]
    fn declarations_up_to_the_limit_compile_and_one_more_is_refused() {
        let lets = |n: usize| -> String {
            let body: String = (0..n).map(|i| format!("let a{i} = {i};\n")).collect();
            format!("fn run(args) {{\n{body}1\n}}")
        };
        compile(&lets(MAX_DECLARATIONS)).unwrap();
        let err = compile(&lets(MAX_DECLARATIONS + 1)).unwrap_err();
        assert!(
            err.contains(&format!("more than {MAX_DECLARATIONS} variables")),
            "{err}"
        );
    }

    #[test]
    fn each_parse_counts_on_its_own() {
        let half: String = (0..MAX_FUNCTIONS / 2 + 1)
            .map(|i| format!("fn f{i}() {{ 1 }}\n"))
            .collect();
        for _ in 0..4 {
            compile(&half).unwrap();
        }
    }

    #[test]
    fn a_parse_that_runs_too_long_is_ended() {
        // Thousands of parameters: Rhai checks each against all before it.
        let params: String = (0..200_000).map(|i| format!(", p{i}")).collect();
        let err = compile(&format!("fn g(a{params}) {{ a }}")).unwrap_err();
        assert!(err.contains("took more than"), "{err}");
    }
}
