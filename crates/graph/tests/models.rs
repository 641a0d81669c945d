//! The reference models build with the expected shapes and evaluate to
//! finite, O(1) values.

use weft_graph::models::resnet18;
use weft_graph::{evaluate, DType, Op, Shape, SplitMix64};

#[test]
fn resnet18_structure() {
    let g = resnet18(7, 2, 64, 10).unwrap();
    let out = g.info(g.outputs[0]);
    assert_eq!(out.shape, Shape::new(vec![2, 10]));
    assert_eq!(out.dtype, DType::F32);
    let convs = g.nodes.node_weights().filter(|n| matches!(n.op, Op::Conv { .. })).count();
    // 1 stem + 16 block convs + 3 downsample shortcuts.
    assert_eq!(convs, 20);
    let adds = g.nodes.node_weights().filter(|n| n.op.name() == "Add").count();
    assert_eq!(adds, 8);
    let params: usize = g.constants.values().map(|t| t.shape.numel()).sum();
    // torchvision's resnet18 has 11.69M parameters with 1000 classes; with 10
    // classes the FC shrinks by 990·513, and the running statistics of its
    // 4800 BN channels (not parameters to PyTorch) add 2·4800.
    assert_eq!(params, 11_689_512 - 990 * 513 + 2 * 4_800);
}

#[test]
fn resnet18_evaluates_to_finite_logits_that_depend_on_the_seed() {
    let g1 = resnet18(1, 1, 32, 10).unwrap();
    let g2 = resnet18(2, 1, 32, 10).unwrap();
    let x = SplitMix64::new(99).tensor(&[1, 3, 32, 32], -1.0, 1.0);
    let y1 = evaluate(&g1, std::slice::from_ref(&x)).unwrap().remove(0).to_f64();
    let y2 = evaluate(&g2, &[x]).unwrap().remove(0).to_f64();
    assert_eq!(y1.len(), 10);
    assert!(y1.iter().all(|v| v.is_finite()), "{y1:?}");
    let rms = (y1.iter().map(|v| v * v).sum::<f64>() / 10.0).sqrt();
    assert!((0.01..100.0).contains(&rms), "logits rms {rms} is not O(1): {y1:?}");
    assert_ne!(y1, y2);
}
