//! The shared conformance suite (weft-kernels' reference kernels against
//! their f64 references), instantiated for the interpreter; plus the
//! bit-for-bit determinism of each case across worker counts.

use weft_interp::Interpreter;
use weft_kernels::{conformance_cases, Runner};

/// The suite's runner for the interpreter itself.
fn on(interp: &Interpreter) -> Box<Runner<'_>> {
    Box::new(move |k, args| interp.run(k, args).map(|_| ()).map_err(|e| e.into()))
}

#[test]
fn every_conformance_case_passes_on_the_interpreter() {
    let interp = Interpreter::new().threads(4);
    let failures: Vec<String> = conformance_cases()
        .iter()
        .filter_map(|case| case.check("interp", &mut *on(&interp)).err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn conformance_outputs_do_not_depend_on_the_worker_count() {
    let one = Interpreter::new().threads(1);
    let many = Interpreter::new().threads(3);
    for case in conformance_cases() {
        let a = case.run("interp", &mut *on(&one)).unwrap();
        let b = case.run("interp", &mut *on(&many)).unwrap();
        let bits = |o: &[(usize, Vec<f64>)]| -> Vec<u64> {
            o.iter().flat_map(|(_, v)| v.iter().map(|x| x.to_bits())).collect()
        };
        assert_eq!(bits(&a), bits(&b), "{}", case.name);
    }
}
