//! Bad input to the ONNX importer: a bounded fuzz run as property tests, plus
//! structurally broken models written out by hand.
//!
//! Small valid models (Conv+Relu+Gemm, Reshape with constant shapes, a
//! Shape/ConstantOfShape/Range/Expand folding chain, Resize, Split/Concat,
//! Gather) are built here with the protobuf types, then damaged: as bytes
//! (bit flips, overwrites, truncation, splicing two models, inserted bytes)
//! and as protobuf (dims made huge, zero or negative, attributes and element
//! types changed, inputs dropped, outputs renamed to dangling names, huge
//! integers in shape constants, nodes reordered). Whatever comes out, import
//! must answer `Ok` or `Err` — never panic, never take long, never build
//! a tensor beyond `ImportOptions::max_elements`, and never hold constants
//! beyond the memory budget (`ImportOptions::max_memory`): the fuzz budget is
//! small enough that damaged dims reach its refusal.
//!
//! Each property runs a fixed number of cases from proptest's deterministic
//! per-test seed; `PROPTEST_CASES` raises it for a longer local run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto;
use onnx_protobuf::{AttributeProto, GraphProto, Message, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use proptest::prelude::*;
use protobuf::Enum;
use weft_graph::onnx::testing::{
    attr_int, attr_ints, attr_string, attr_tensor, f32_input, graph, model_of, node, output, tensor_f32, tensor_i64,
};
use weft_graph::{import_onnx, Graph, ImportError, ImportOptions};

/// The element cap the fuzz imports under: small, so a mutated model that
/// the cap lets through still allocates little.
const FUZZ_MAX_ELEMENTS: usize = 1 << 20;

/// The memory budget the fuzz imports under: 4 MiB, so that a dim made
/// huge by a mutation is refused by the budget as often as by the cap.
const FUZZ_MAX_MEMORY: u64 = 4 << 20;

/// How long one import may take (debug build) before the case fails.
const CASE_BUDGET: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------- builders

/// A model as every fuzz model is built: graph `fuzz`, outputs declared by
/// name alone (the byte mutations hit these exact bytes).
fn model(
    opset: i64,
    inputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
    nodes: Vec<NodeProto>,
    outs: &[&str],
) -> ModelProto {
    model_of(opset, graph("fuzz", inputs, inits, nodes, outs.iter().map(|o| output(o)).collect()))
}

// ------------------------------------------------------------ seed models

fn conv_relu_gemm() -> ModelProto {
    model(
        13,
        vec![f32_input("x", &[1, 2, 4, 4])],
        vec![
            tensor_f32("w", &[3, 2, 3, 3], (0..54).map(|i| i as f32 * 0.01).collect()),
            tensor_f32("b", &[3], vec![0.1, -0.2, 0.3]),
            tensor_f32("fc", &[12, 5], (0..60).map(|i| (i % 7) as f32 * 0.1).collect()),
            tensor_f32("fcb", &[5], vec![0.0; 5]),
        ],
        vec![
            node(
                "Conv",
                "conv",
                &["x", "w", "b"],
                &["c"],
                vec![
                    attr_ints("kernel_shape", &[3, 3]),
                    attr_ints("pads", &[1, 1, 1, 1]),
                    attr_ints("strides", &[1, 1]),
                    attr_ints("dilations", &[1, 1]),
                    attr_int("group", 1),
                ],
            ),
            node("Relu", "relu", &["c"], &["r"], vec![]),
            node(
                "MaxPool",
                "pool",
                &["r"],
                &["p"],
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("strides", &[2, 2]),
                    attr_ints("pads", &[0, 0, 0, 0]),
                    attr_int("ceil_mode", 1),
                ],
            ),
            node("Flatten", "flat", &["p"], &["f"], vec![attr_int("axis", 1)]),
            node("Gemm", "gemm", &["f", "fc", "fcb"], &["y"], vec![attr_int("transB", 0)]),
        ],
        &["y"],
    )
}

fn reshape_chain() -> ModelProto {
    let shape_const = {
        let mut t = tensor_i64("", &[3], vec![0, 2, -1]);
        t.name = String::new();
        t
    };
    model(
        13,
        vec![f32_input("x", &[2, 3, 4])],
        vec![tensor_i64("s1", &[2], vec![4, -1])],
        vec![
            node("Reshape", "r1", &["x", "s1"], &["a"], vec![]),
            node("Constant", "k", &[], &["s2"], vec![attr_tensor("value", shape_const)]),
            node("Reshape", "r2", &["a", "s2"], &["b"], vec![]),
            node("Transpose", "t", &["b"], &["y"], vec![attr_ints("perm", &[2, 1, 0])]),
        ],
        &["y"],
    )
}

/// Shape → ConstantOfShape / Range / Expand / Gather → Concat → Reshape: all
/// folded at import, consumed by two real nodes.
fn folding_chain() -> ModelProto {
    let one = tensor_f32("", &[1], vec![1.0]);
    model(
        13,
        vec![f32_input("x", &[2, 3])],
        vec![
            tensor_i64("zero", &[], vec![0]),
            tensor_i64("six", &[], vec![6]),
            tensor_i64("step", &[], vec![1]),
            tensor_i64("idx", &[], vec![1]),
            tensor_i64("ax0", &[1], vec![0]),
            tensor_i64("minus1", &[1], vec![-1]),
            tensor_f32("row", &[3], vec![1.0, 2.0, 3.0]),
        ],
        vec![
            node("Shape", "shape", &["x"], &["s"], vec![]),
            node("ConstantOfShape", "ones", &["s"], &["o"], vec![attr_tensor("value", one)]),
            node("Range", "range", &["zero", "six", "step"], &["r"], vec![]),
            node("Reshape", "rr", &["r", "s"], &["r2"], vec![]),
            node("Cast", "cast", &["r2"], &["rf"], vec![attr_int("to", DataType::FLOAT.value() as i64)]),
            node("Expand", "expand", &["row", "s"], &["e"], vec![]),
            node("Gather", "g", &["s", "idx"], &["d1"], vec![attr_int("axis", 0)]),
            node("Unsqueeze", "u", &["d1", "ax0"], &["d1u"], vec![]),
            node("Concat", "cat", &["minus1", "d1u"], &["s3"], vec![attr_int("axis", 0)]),
            node("Add", "add", &["x", "o"], &["a"], vec![]),
            node("Mul", "mul", &["a", "rf"], &["m"], vec![]),
            node("Add", "add2", &["m", "e"], &["m2"], vec![]),
            node("Reshape", "out", &["m2", "s3"], &["y"], vec![]),
        ],
        &["y"],
    )
}

fn resize() -> ModelProto {
    model(
        13,
        vec![f32_input("x", &[1, 1, 2, 2])],
        vec![tensor_f32("scales", &[4], vec![1.0, 1.0, 2.0, 2.0]), tensor_i64("sizes", &[4], vec![1, 1, 3, 5])],
        vec![
            node(
                "Resize",
                "up",
                &["x", "", "scales"],
                &["a"],
                vec![attr_string("mode", "nearest"), attr_string("coordinate_transformation_mode", "asymmetric")],
            ),
            node("Resize", "sized", &["a", "", "", "sizes"], &["y"], vec![attr_string("mode", "linear")]),
        ],
        &["y"],
    )
}

fn split_concat() -> ModelProto {
    model(
        13,
        vec![f32_input("x", &[2, 6])],
        vec![
            tensor_i64("split", &[2], vec![2, 4]),
            tensor_i64("pads", &[4], vec![0, 1, 0, 1]),
            tensor_i64("starts", &[1], vec![1]),
            tensor_i64("ends", &[1], vec![-1]),
            tensor_i64("axes", &[1], vec![1]),
            tensor_i64("steps", &[1], vec![2]),
        ],
        vec![
            node("Split", "split", &["x", "split"], &["a", "b"], vec![attr_int("axis", 1)]),
            node("Concat", "cat", &["b", "a"], &["c"], vec![attr_int("axis", 1)]),
            node("Pad", "pad", &["c", "pads"], &["p"], vec![]),
            node("Slice", "slice", &["p", "starts", "ends", "axes", "steps"], &["y"], vec![]),
        ],
        &["y"],
    )
}

fn gather() -> ModelProto {
    model(
        13,
        vec![f32_input("x", &[5, 4])],
        vec![
            tensor_i64("idx", &[3], vec![0, 4, -2]),
            tensor_f32("table", &[4, 2], (0..8).map(|i| i as f32).collect()),
            tensor_i64("tidx", &[3], vec![3, 1, 0]),
        ],
        vec![
            node("Gather", "rows", &["x", "idx"], &["g"], vec![attr_int("axis", 0)]),
            // All-constant: evaluated at import.
            node("Gather", "const_rows", &["table", "tidx"], &["t"], vec![attr_int("axis", 0)]),
            node("MatMul", "mm", &["g", "table"], &["y"], vec![]),
            node("Add", "add", &["y", "t"], &["z"], vec![]),
        ],
        &["y", "z"],
    )
}

/// ConvTranspose and AveragePool, whose output sizes grow with strides,
/// dilations and output padding.
fn conv_transpose_pool() -> ModelProto {
    model(
        13,
        vec![f32_input("x", &[1, 2, 3, 3])],
        vec![tensor_f32("w", &[2, 1, 2, 2], vec![0.5; 8])],
        vec![
            node(
                "ConvTranspose",
                "up",
                &["x", "w"],
                &["u"],
                vec![
                    attr_ints("strides", &[2, 2]),
                    attr_ints("dilations", &[1, 1]),
                    attr_ints("output_padding", &[1, 1]),
                    attr_ints("pads", &[0, 0, 0, 0]),
                    attr_int("group", 2),
                ],
            ),
            node(
                "AveragePool",
                "avg",
                &["u"],
                &["y"],
                vec![
                    attr_ints("kernel_shape", &[3, 3]),
                    attr_ints("strides", &[2, 2]),
                    attr_ints("pads", &[1, 1, 1, 1]),
                    attr_int("count_include_pad", 1),
                ],
            ),
        ],
        &["y"],
    )
}

fn seeds() -> Vec<(&'static str, ModelProto)> {
    vec![
        ("conv_relu_gemm", conv_relu_gemm()),
        ("reshape_chain", reshape_chain()),
        ("folding_chain", folding_chain()),
        ("resize", resize()),
        ("split_concat", split_concat()),
        ("gather", gather()),
        ("conv_transpose_pool", conv_transpose_pool()),
    ]
}

fn fuzz_options() -> ImportOptions {
    ImportOptions {
        max_elements: Some(FUZZ_MAX_ELEMENTS),
        max_memory: Some(FUZZ_MAX_MEMORY),
        ..ImportOptions::default()
    }
}

// ------------------------------------------------------------- the oracle

/// Imports `bytes`, turning a panic, a slow import or an oversized tensor
/// into a failure that names the case.
fn check_import(
    case: &str,
    bytes: &[u8],
    options: &ImportOptions,
) -> Result<Result<Graph, ImportError>, TestCaseError> {
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| import_onnx(bytes, options)));
    let took = started.elapsed();
    let result = match result {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(non-string panic)".into());
            return Err(TestCaseError::fail(format!("import panicked on {case}: {msg}")));
        }
    };
    if took > CASE_BUDGET {
        return Err(TestCaseError::fail(format!("import took {took:?} on {case} (budget {CASE_BUDGET:?})")));
    }
    if let (Ok(g), Some(budget)) = (&result, options.max_memory) {
        // What import held: the graph's constants, at their element size.
        let held: u64 = g.constants.values().map(weft_graph::memory::held_bytes).sum();
        if held > budget {
            return Err(TestCaseError::fail(format!(
                "{case}: constants of {held} bytes passed the {budget}-byte budget"
            )));
        }
        for (_, info) in g.tensors.iter() {
            let bytes = weft_graph::memory::tensor_bytes(info.shape.dims(), info.dtype.size_bytes() as u64);
            if bytes > budget {
                return Err(TestCaseError::fail(format!(
                    "{case}: tensor `{}` of {bytes} bytes passed the {budget}-byte budget",
                    info.name
                )));
            }
        }
    }
    if let (Err(ImportError::Memory(e)), Some(budget)) = (&result, options.max_memory) {
        // The refusal names the budget in force and needs more than it.
        if e.limit != budget || e.needed <= budget || e.largest.is_empty() {
            return Err(TestCaseError::fail(format!("{case}: a budget refusal that does not add up: {e:?}")));
        }
    }
    if let (Ok(g), Some(limit)) = (&result, options.max_elements) {
        for (_, info) in g.tensors.iter() {
            let numel = info.shape.dims().iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if numel.is_none_or(|n| n > limit) {
                return Err(TestCaseError::fail(format!(
                    "{case}: tensor `{}` of shape {} passed the {limit}-element cap",
                    info.name, info.shape
                )));
            }
        }
    }
    Ok(result)
}

#[test]
fn every_seed_imports() {
    for (name, m) in seeds() {
        let bytes = m.write_to_bytes().unwrap();
        let r = import_onnx(&bytes, &fuzz_options());
        assert!(r.is_ok(), "seed {name} does not import: {}", r.unwrap_err());
    }
}

// --------------------------------------------------------- byte mutations

#[derive(Clone, Debug)]
enum ByteMutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    Overwrite {
        at: usize,
        bytes: Vec<u8>,
    },
    Truncate {
        keep: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// The head of this model up to `at`, the tail of seed `other` from `from`.
    Splice {
        at: usize,
        other: usize,
        from: usize,
    },
}

fn byte_mutation() -> impl Strategy<Value = ByteMutation> {
    let bytes = prop::collection::vec(any::<u8>(), 1..16);
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| ByteMutation::FlipBit { at, bit }),
        (any::<usize>(), bytes.clone()).prop_map(|(at, bytes)| ByteMutation::Overwrite { at, bytes }),
        any::<usize>().prop_map(|keep| ByteMutation::Truncate { keep }),
        (any::<usize>(), bytes).prop_map(|(at, bytes)| ByteMutation::Insert { at, bytes }),
        (any::<usize>(), any::<usize>(), any::<usize>()).prop_map(|(at, other, from)| ByteMutation::Splice {
            at,
            other,
            from
        }),
    ]
}

fn apply_bytes(b: &mut Vec<u8>, m: &ByteMutation, all: &[Vec<u8>]) {
    if b.is_empty() {
        return;
    }
    let len = b.len();
    match m {
        ByteMutation::FlipBit { at, bit } => b[at % len] ^= 1 << bit,
        ByteMutation::Overwrite { at, bytes } => {
            for (i, &x) in bytes.iter().enumerate() {
                let j = (at + i) % len;
                b[j] = x;
            }
        }
        ByteMutation::Truncate { keep } => b.truncate(keep % len),
        ByteMutation::Insert { at, bytes } => {
            let at = at % (len + 1);
            b.splice(at..at, bytes.iter().copied());
        }
        ByteMutation::Splice { at, other, from } => {
            let o = &all[other % all.len()];
            b.truncate(at % len);
            b.extend_from_slice(&o[from % o.len()..]);
        }
    }
}

// ---------------------------------------------------- structured mutations

/// Values that break arithmetic: zero, negatives, `i32`/`i64` edges, and
/// sizes just past what any tensor may have.
const NASTY: &[i64] = &[
    0,
    -1,
    -2,
    1,
    2,
    7,
    1 << 16,
    (1 << 31) - 1,
    1 << 31,
    1 << 32,
    1 << 40,
    1 << 62,
    i64::MAX,
    i64::MIN,
    i64::MIN + 1,
    -(1 << 40),
];

#[derive(Clone, Debug)]
enum ProtoMutation {
    /// A dim of a graph input (`which` picks one) set to `NASTY[v]`.
    InputDim { which: usize, v: usize },
    /// A dim of an initializer set to `NASTY[v]`.
    InitDim { which: usize, v: usize },
    /// An element of an integer initializer or constant (shape vectors,
    /// indices, split sizes) set to `NASTY[v]`.
    ShapeConst { which: usize, v: usize },
    /// An int or ints attribute of a node set to `NASTY[v]`.
    AttrValue { which: usize, v: usize },
    /// An attribute's declared type changed.
    AttrType { which: usize, ty: i32 },
    /// An attribute removed.
    DropAttr { which: usize },
    /// An initializer's or graph input's element type set to `ty`.
    DataType { which: usize, ty: i32 },
    /// A node input dropped (removed, or blanked to `""`).
    DropInput { which: usize, blank: bool },
    /// A node output or graph output renamed to a name nothing produces.
    DangleOutput { which: usize },
    /// Two nodes swapped (breaking the topological order).
    SwapNodes { a: usize, b: usize },
    /// A node duplicated (its outputs defined twice).
    DuplicateNode { which: usize },
    /// The opset changed.
    Opset { v: i64 },
}

fn proto_mutation() -> impl Strategy<Value = ProtoMutation> {
    let v = 0..NASTY.len();
    prop_oneof![
        (any::<usize>(), v.clone()).prop_map(|(which, v)| ProtoMutation::InputDim { which, v }),
        (any::<usize>(), v.clone()).prop_map(|(which, v)| ProtoMutation::InitDim { which, v }),
        (any::<usize>(), v.clone()).prop_map(|(which, v)| ProtoMutation::ShapeConst { which, v }),
        (any::<usize>(), v.clone()).prop_map(|(which, v)| ProtoMutation::ShapeConst { which, v }),
        (any::<usize>(), v).prop_map(|(which, v)| ProtoMutation::AttrValue { which, v }),
        (any::<usize>(), 0i32..12).prop_map(|(which, ty)| ProtoMutation::AttrType { which, ty }),
        any::<usize>().prop_map(|which| ProtoMutation::DropAttr { which }),
        (any::<usize>(), -1i32..26).prop_map(|(which, ty)| ProtoMutation::DataType { which, ty }),
        (any::<usize>(), any::<bool>()).prop_map(|(which, blank)| ProtoMutation::DropInput { which, blank }),
        any::<usize>().prop_map(|which| ProtoMutation::DangleOutput { which }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| ProtoMutation::SwapNodes { a, b }),
        any::<usize>().prop_map(|which| ProtoMutation::DuplicateNode { which }),
        (7i64..20).prop_map(|v| ProtoMutation::Opset { v }),
    ]
}

/// Every integer tensor of the model: initializers and `Constant` values.
fn int_tensors(g: &mut GraphProto) -> Vec<&mut TensorProto> {
    let mut out: Vec<&mut TensorProto> =
        g.initializer.iter_mut().filter(|t| t.data_type == DataType::INT64.value()).collect();
    for n in g.node.iter_mut() {
        for a in n.attribute.iter_mut() {
            if let Some(t) = a.t.as_mut() {
                if t.data_type == DataType::INT64.value() {
                    out.push(t);
                }
            }
        }
    }
    out
}

fn apply_proto(m: &mut ModelProto, mutation: &ProtoMutation) {
    if let ProtoMutation::Opset { v } = mutation {
        m.opset_import[0].version = *v;
        return;
    }
    let g = m.graph.as_mut().expect("seed models have a graph");
    match *mutation {
        ProtoMutation::InputDim { which, v } => {
            let mut dims: Vec<&mut Dimension> = g
                .input
                .iter_mut()
                .filter_map(|i| match i.type_.as_mut()?.value.as_mut()? {
                    type_proto::Value::TensorType(tt) => Some(tt.shape.as_mut()?.dim.iter_mut()),
                    _ => None,
                })
                .flatten()
                .collect();
            if !dims.is_empty() {
                let len = dims.len();
                dims[which % len].value = Some(dimension::Value::DimValue(NASTY[v]));
            }
        }
        ProtoMutation::InitDim { which, v } => {
            let mut dims: Vec<&mut i64> = g.initializer.iter_mut().flat_map(|t| t.dims.iter_mut()).collect();
            if !dims.is_empty() {
                let len = dims.len();
                *dims[which % len] = NASTY[v];
            }
        }
        ProtoMutation::ShapeConst { which, v } => {
            let mut elems: Vec<&mut i64> = int_tensors(g).into_iter().flat_map(|t| t.int64_data.iter_mut()).collect();
            if !elems.is_empty() {
                let len = elems.len();
                *elems[which % len] = NASTY[v];
            }
        }
        ProtoMutation::AttrValue { which, v } => {
            let mut attrs: Vec<&mut AttributeProto> = g.node.iter_mut().flat_map(|n| n.attribute.iter_mut()).collect();
            if !attrs.is_empty() {
                let len = attrs.len();
                let a = &mut attrs[which % len];
                a.i = NASTY[v];
                if !a.ints.is_empty() {
                    let k = (which / len) % a.ints.len();
                    a.ints[k] = NASTY[v];
                }
                a.f = NASTY[v] as f32;
            }
        }
        ProtoMutation::AttrType { which, ty } => {
            let mut attrs: Vec<&mut AttributeProto> = g.node.iter_mut().flat_map(|n| n.attribute.iter_mut()).collect();
            if !attrs.is_empty() {
                let len = attrs.len();
                attrs[which % len].type_ = protobuf::EnumOrUnknown::from_i32(ty);
            }
        }
        ProtoMutation::DropAttr { which } => {
            let total: usize = g.node.iter().map(|n| n.attribute.len()).sum();
            if total > 0 {
                let mut k = which % total;
                for n in g.node.iter_mut() {
                    if k < n.attribute.len() {
                        n.attribute.remove(k);
                        break;
                    }
                    k -= n.attribute.len();
                }
            }
        }
        ProtoMutation::DataType { which, ty } => {
            let count = g.initializer.len() + g.input.len();
            let k = which % count.max(1);
            if k < g.initializer.len() {
                g.initializer[k].data_type = ty;
            } else if let Some(input) = g.input.get_mut(k - g.initializer.len()) {
                if let Some(type_proto::Value::TensorType(tt)) = input.type_.as_mut().and_then(|t| t.value.as_mut()) {
                    tt.elem_type = ty;
                }
            }
        }
        ProtoMutation::DropInput { which, blank } => {
            let mut inputs: Vec<(usize, usize)> = Vec::new();
            for (i, n) in g.node.iter().enumerate() {
                inputs.extend((0..n.input.len()).map(|j| (i, j)));
            }
            if !inputs.is_empty() {
                let (i, j) = inputs[which % inputs.len()];
                if blank {
                    g.node[i].input[j].clear();
                } else {
                    g.node[i].input.remove(j);
                }
            }
        }
        ProtoMutation::DangleOutput { which } => {
            let mut names: Vec<&mut String> = g.node.iter_mut().flat_map(|n| n.output.iter_mut()).collect();
            names.extend(g.output.iter_mut().map(|o| &mut o.name));
            let len = names.len();
            *names[which % len] = format!("dangling_{which}");
        }
        ProtoMutation::SwapNodes { a, b } => {
            let len = g.node.len();
            g.node.swap(a % len, b % len);
        }
        ProtoMutation::DuplicateNode { which } => {
            let n = g.node[which % g.node.len()].clone();
            g.node.push(n);
        }
        ProtoMutation::Opset { .. } => unreachable!("handled above"),
    }
}

// ------------------------------------------------------------- properties

/// Cases per property: 4000 by default (a few seconds in all in a debug
/// build), or `PROPTEST_CASES` for a longer run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(4000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Damaged bytes import as `Ok` or `Err`, quickly, within the cap.
    #[test]
    fn damaged_bytes_never_panic(seed in 0usize..7, mutations in prop::collection::vec(byte_mutation(), 1..4)) {
        let all: Vec<Vec<u8>> = seeds().iter().map(|(_, m)| m.write_to_bytes().unwrap()).collect();
        let mut bytes = all[seed].clone();
        for m in &mutations {
            apply_bytes(&mut bytes, m, &all);
        }
        let case = format!("seed {} with {mutations:?}", seeds()[seed].0);
        let _imported = check_import(&case, &bytes, &fuzz_options())?;
    }

    /// Damaged models (bad dims, attributes, types, wiring) import as `Ok`
    /// or as an error, quickly, within the cap.
    #[test]
    fn damaged_models_never_panic(seed in 0usize..7, mutations in prop::collection::vec(proto_mutation(), 1..4)) {
        let (name, mut m) = seeds().swap_remove(seed);
        for mutation in &mutations {
            apply_proto(&mut m, mutation);
        }
        let bytes = m.write_to_bytes().unwrap();
        let case = format!("seed {name} with {mutations:?}");
        let _imported = check_import(&case, &bytes, &fuzz_options())?;
    }

    /// Every seed under a budget from nothing to more than it needs: `Ok`
    /// within the budget or the budget's own refusal, never a panic.
    #[test]
    fn any_budget_is_kept_or_refused(seed in 0usize..7, budget in 1u64..(64 << 10)) {
        let (name, m) = seeds().swap_remove(seed);
        let bytes = m.write_to_bytes().unwrap();
        let options = ImportOptions { max_memory: Some(budget), ..fuzz_options() };
        let case = format!("seed {name} under a {budget}-byte budget");
        match check_import(&case, &bytes, &options)? {
            Ok(_) | Err(ImportError::Memory(_)) => {}
            Err(e) => {
                // The same model imports under the ordinary fuzz budget, so
                // any other refusal is the budget's fault.
                let again = check_import(&case, &bytes, &fuzz_options())?;
                prop_assert!(again.is_err(), "{case}: refused with `{e}` only under the small budget");
            }
        }
    }
}

/// A budget of 1 GiB: the size the tests below would allocate is 4 GB or more.
const GIB: u64 = 1 << 30;

fn import_under(m: &ModelProto, budget: u64) -> Result<Graph, ImportError> {
    let bytes = m.write_to_bytes().unwrap();
    let options = ImportOptions { max_memory: Some(budget), ..ImportOptions::default() };
    match check_import("budget", &bytes, &options) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

/// The refusal is the budget's, names `node` and the fix, and counts the
/// tensor that did not fit: it came before anything that size existed.
fn expect_budget(m: &ModelProto, budget: u64, node: &str, at_least: u64) {
    let e = import_under(m, budget).map(|_| ()).expect_err("the model must be refused");
    let ImportError::Memory(mem) = &e else { panic!("not the budget's refusal: {e}") };
    assert_eq!(mem.limit, budget);
    assert!(mem.needed >= at_least, "{mem:?}");
    assert!(mem.largest.iter().any(|(_, b)| *b >= at_least), "the largest tensor is named: {mem:?}");
    let text = e.to_string();
    assert!(text.contains(node) && text.contains("--max-memory"), "{text}");
}

#[test]
fn a_pad_to_a_billion_elements_is_refused_by_the_budget() {
    // x: [1] padded by 999,999,999 at the end: 4 GB of f32.
    let pads = tensor_i64("pads", &[2], vec![0, 999_999_999]);
    let pad = node("Pad", "pad_huge", &["x", "pads"], &["y"], vec![]);
    let m = model(18, vec![f32_input("x", &[1])], vec![pads.clone()], vec![pad.clone()], &["y"]);
    expect_budget(&m, GIB, "pad_huge", 4_000_000_000);
    // The same over a constant: the evaluator would build it.
    let m = model(18, vec![], vec![tensor_f32("x", &[1], vec![1.0]), pads], vec![pad], &["y"]);
    expect_budget(&m, GIB, "pad_huge", 4_000_000_000);
    // Under a budget it fits, the run-time Pad imports.
    let pads = tensor_i64("pads", &[2], vec![0, 999]);
    let m = model(
        18,
        vec![f32_input("x", &[1])],
        vec![pads],
        vec![node("Pad", "p", &["x", "pads"], &["y"], vec![])],
        &["y"],
    );
    let g = import_under(&m, GIB).unwrap();
    assert_eq!(g.info(g.outputs[0]).shape.dims(), &[1000]);
}

#[test]
fn an_expand_to_a_billion_elements_is_refused_by_the_budget() {
    let shape = tensor_i64("s", &[3], vec![1000, 1000, 1000]);
    let grow = node("Expand", "grow_huge", &["x", "s"], &["y"], vec![]);
    // Of a run-time input: the ones it multiplies by would be 4 GB.
    let m = model(13, vec![f32_input("x", &[1])], vec![shape.clone()], vec![grow.clone()], &["y"]);
    expect_budget(&m, GIB, "grow_huge", 4_000_000_000);
    // Of a constant: folding would build it.
    let m = model(13, vec![], vec![tensor_f32("x", &[1], vec![2.0]), shape], vec![grow], &["y"]);
    expect_budget(&m, GIB, "grow_huge", 4_000_000_000);
}

#[test]
fn weights_beyond_the_budget_are_refused_naming_the_largest() {
    let w1 = tensor_f32("w_small", &[16], vec![1.0; 16]);
    let w2 = tensor_f32("w_big", &[256], vec![1.0; 256]);
    let m = model(
        13,
        vec![f32_input("x", &[256])],
        vec![w1, w2],
        vec![
            node("Add", "add", &["x", "w_big"], &["y"], vec![]),
            node("Add", "add2", &["w_small", "w_small"], &["z"], vec![]),
        ],
        &["y", "z"],
    );
    // 64 + 1024 bytes of weights: 1000 bytes is too few, and says so.
    let e = import_under(&m, 1000).map(|_| ()).expect_err("over budget");
    let ImportError::Memory(mem) = &e else { panic!("{e}") };
    assert_eq!(mem.largest[0], ("w_big".to_string(), 1024), "{mem:?}");
    assert!(import_under(&m, 64 << 10).is_ok());
}

// ------------------------------------------------- hand-written bad models

fn import(m: &ModelProto) -> Result<Graph, ImportError> {
    let bytes = m.write_to_bytes().unwrap();
    match check_import("hand-written", &bytes, &ImportOptions::default()) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn expect_err(m: &ModelProto, needles: &[&str]) -> String {
    let e = import(m).map(|_| ()).expect_err("the model must be refused").to_string();
    for n in needles {
        assert!(e.contains(n), "`{e}` does not mention `{n}`");
    }
    e
}

#[test]
fn a_node_consuming_its_own_output_is_refused() {
    let m =
        model(13, vec![f32_input("x", &[2])], vec![], vec![node("Add", "loop", &["x", "y"], &["y"], vec![])], &["y"]);
    expect_err(&m, &["loop", "`y`"]);
}

#[test]
fn a_node_consuming_a_later_output_is_refused() {
    let m = model(
        13,
        vec![f32_input("x", &[2])],
        vec![],
        vec![node("Relu", "first", &["b"], &["a"], vec![]), node("Relu", "second", &["a"], &["b"], vec![])],
        &["b"],
    );
    expect_err(&m, &["first", "`b`"]);
}

#[test]
fn an_output_defined_twice_is_refused() {
    let m = model(
        13,
        vec![f32_input("x", &[2])],
        vec![],
        vec![node("Relu", "one", &["x"], &["y"], vec![]), node("Neg", "two", &["x"], &["y"], vec![])],
        &["y"],
    );
    expect_err(&m, &["two", "`y`"]);
}

#[test]
fn an_output_shadowing_an_input_is_refused() {
    let m = model(13, vec![f32_input("x", &[2])], vec![], vec![node("Relu", "r", &["x"], &["x"], vec![])], &["x"]);
    expect_err(&m, &["`r`", "`x`"]);
}

#[test]
fn an_empty_graph_imports_as_an_empty_graph() {
    let m = model(13, vec![], vec![], vec![], &[]);
    let g = import(&m).expect("an empty graph is valid ONNX");
    assert!(g.inputs.is_empty() && g.outputs.is_empty() && g.nodes.node_count() == 0);
}

#[test]
fn a_model_without_a_graph_is_refused() {
    let mut m = model(13, vec![], vec![], vec![], &[]);
    m.graph = None.into();
    expect_err(&m, &["no graph"]);
}

#[test]
fn a_node_with_no_outputs_does_not_panic() {
    let m = model(
        13,
        vec![f32_input("x", &[2])],
        vec![],
        vec![node("Relu", "silent", &["x"], &[], vec![]), node("Neg", "n", &["x"], &["y"], vec![])],
        &["y"],
    );
    // Either ignored or refused naming the node; never a panic.
    if let Err(e) = import(&m) {
        assert!(e.to_string().contains("silent"), "{e}");
    }
}

#[test]
fn an_output_nothing_produces_is_refused() {
    let m = model(13, vec![f32_input("x", &[2])], vec![], vec![node("Relu", "r", &["x"], &["y"], vec![])], &["z"]);
    expect_err(&m, &["`z`"]);
}

fn constant_of_shape(dims: Vec<i64>) -> ModelProto {
    model(
        13,
        vec![],
        vec![tensor_i64("s", &[dims.len() as i64], dims)],
        vec![node("ConstantOfShape", "fill", &["s"], &["y"], vec![])],
        &["y"],
    )
}

#[test]
fn a_folded_constant_past_the_default_cap_is_refused_before_allocating() {
    // 2^32 elements: 16 GiB if it were built.
    let e = expect_err(&constant_of_shape(vec![1 << 16, 1 << 16]), &["fill", "ConstantOfShape"]);
    assert!(
        matches!(import(&constant_of_shape(vec![1 << 16, 1 << 16])), Err(ImportError::LimitExceeded { .. })),
        "{e}"
    );
    // Dims whose product overflows usize.
    expect_err(&constant_of_shape(vec![1 << 40, 1 << 40, 1 << 40]), &["fill"]);
}

#[test]
fn the_cap_is_configurable() {
    let bytes = constant_of_shape(vec![64, 64]).write_to_bytes().unwrap();
    assert!(import_onnx(&bytes, &ImportOptions::default()).is_ok());
    let small = ImportOptions { max_elements: Some(1000), ..ImportOptions::default() };
    let e = import_onnx(&bytes, &small).expect_err("4096 elements > 1000");
    assert!(matches!(e, ImportError::LimitExceeded { .. }), "{e}");
    assert!(e.to_string().contains("4096") && e.to_string().contains("1000"), "{e}");
}

#[test]
fn a_huge_range_is_refused_before_allocating() {
    let m = model(
        13,
        vec![],
        vec![tensor_i64("a", &[], vec![0]), tensor_i64("b", &[], vec![i64::MAX]), tensor_i64("d", &[], vec![1])],
        vec![node("Range", "range", &["a", "b", "d"], &["y"], vec![])],
        &["y"],
    );
    expect_err(&m, &["range"]);
}

#[test]
fn a_huge_expand_is_refused_before_allocating() {
    let m = model(
        13,
        vec![f32_input("x", &[1])],
        vec![tensor_i64("s", &[3], vec![1 << 20, 1 << 20, 4])],
        vec![node("Expand", "grow", &["x", "s"], &["y"], vec![])],
        &["y"],
    );
    expect_err(&m, &["grow"]);
}

#[test]
fn an_initializer_whose_dims_disagree_with_its_data_is_refused() {
    let m = model(
        13,
        vec![f32_input("x", &[2])],
        vec![tensor_f32("w", &[1 << 62, 1 << 62], vec![1.0, 2.0])],
        vec![node("Add", "add", &["x", "w"], &["y"], vec![])],
        &["y"],
    );
    expect_err(&m, &["`w`"]);
    let m = model(
        13,
        vec![f32_input("x", &[2])],
        vec![tensor_f32("w", &[3], vec![1.0, 2.0])],
        vec![node("Add", "add", &["x", "w"], &["y"], vec![])],
        &["y"],
    );
    expect_err(&m, &["`w`"]);
}

#[test]
fn an_input_past_the_cap_is_refused() {
    let m = model(
        13,
        vec![f32_input("x", &[1 << 40, 1 << 40])],
        vec![],
        vec![node("Relu", "r", &["x"], &["y"], vec![])],
        &["y"],
    );
    expect_err(&m, &["`x`"]);
}
