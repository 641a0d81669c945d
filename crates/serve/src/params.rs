//! A request's scheduling parameters, from either protocol.
//!
//! | parameter | type | meaning |
//! |---|---|---|
//! | `deadline_us` | integer, 1 to [`MAX_DEADLINE_US`] | the request's own latency objective, µs from receipt to answer, overriding the model's `slo_ms` |
//! | `priority_class` | integer, 0 to 255 | its priority class (default: the model's `priority_class`, else 0); higher classes are dispatched first and refused last |
//!
//! REST takes them in the inference request's `parameters` object (JSON
//! numbers; a float with a fractional part is refused for these integer
//! fields), gRPC in `ModelInferRequest.parameters` (`int64_param` or
//! `uint64_param`). Any other type, or a value out of range, is a 400
//! (`INVALID_ARGUMENT`) naming the parameter. Triton's `priority` (its
//! levels count the other way: 1 is the highest) is refused with a pointer
//! to `priority_class` rather than read with the opposite meaning. Other
//! parameters are left to the protocol layers (`binary_data_output`) or
//! ignored, as in Triton.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::InferError;
use crate::proto::infer_parameter::ParameterChoice;
use crate::proto::InferParameter;

/// The request parameter naming the request's own objective, µs.
pub const DEADLINE_US: &str = "deadline_us";
/// The request parameter naming its priority class.
pub const PRIORITY_CLASS: &str = "priority_class";
/// The largest `deadline_us` accepted: one hour.
pub const MAX_DEADLINE_US: u64 = 3_600_000_000;

/// What a request asked for; `None` leaves the model's default.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestParams {
    pub deadline: Option<Duration>,
    pub priority_class: Option<u8>,
}

/// A parameter's value, protocol-independently: an integer or not.
enum Given {
    Int(i128),
    Other(String),
}

fn check(name: &str, given: Given, min: i128, max: i128, unit: &str) -> Result<i128, InferError> {
    let problem = match given {
        Given::Int(v) if (min..=max).contains(&v) => return Ok(v),
        Given::Int(v) => format!("is {v}: give an integer from {min} to {max}{unit}"),
        Given::Other(what) => format!("is {what}: give an integer from {min} to {max}{unit}"),
    };
    Err(InferError::Parameter { name: name.to_string(), problem })
}

impl RequestParams {
    fn from_given(mut get: impl FnMut(&str) -> Option<Given>) -> Result<RequestParams, InferError> {
        if get("priority").is_some() {
            return Err(InferError::Parameter {
                name: "priority".into(),
                problem: format!(
                    "Triton's priority levels are not supported (1 is its highest); give `{PRIORITY_CLASS}` \
                     (0 to 255, higher is served first)"
                ),
            });
        }
        let deadline = match get(DEADLINE_US) {
            None => None,
            Some(g) => {
                let us = check(DEADLINE_US, g, 1, MAX_DEADLINE_US as i128, " µs")?;
                Some(Duration::from_micros(us as u64))
            }
        };
        let priority_class = match get(PRIORITY_CLASS) {
            None => None,
            Some(g) => Some(check(PRIORITY_CLASS, g, 0, u8::MAX as i128, "")? as u8),
        };
        Ok(RequestParams { deadline, priority_class })
    }

    /// From a REST request's `parameters`.
    pub fn from_json(params: &Map<String, Value>) -> Result<RequestParams, InferError> {
        RequestParams::from_given(|name| {
            params.get(name).map(|v| match v {
                Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                    (Some(i), _) => Given::Int(i as i128),
                    (None, Some(u)) => Given::Int(u as i128),
                    _ => match n.as_f64() {
                        // An integral float (20000.0) is the integer.
                        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 => Given::Int(f as i128),
                        _ => Given::Other(format!("{n}, not an integer")),
                    },
                },
                other => Given::Other(format!("{other}, not a number")),
            })
        })
    }

    /// From a gRPC request's `parameters`.
    pub fn from_grpc(params: &std::collections::HashMap<String, InferParameter>) -> Result<RequestParams, InferError> {
        RequestParams::from_given(|name| {
            params.get(name).map(|p| match &p.parameter_choice {
                Some(ParameterChoice::Int64Param(i)) => Given::Int(*i as i128),
                Some(ParameterChoice::Uint64Param(u)) => Given::Int(*u as i128),
                Some(ParameterChoice::BoolParam(b)) => Given::Other(format!("the bool {b}; use int64_param")),
                Some(ParameterChoice::StringParam(s)) => Given::Other(format!("the string {s:?}; use int64_param")),
                Some(ParameterChoice::DoubleParam(d)) => Given::Other(format!("the double {d}; use int64_param")),
                None => Given::Other("empty; use int64_param".to_string()),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_params(v: Value) -> Result<RequestParams, InferError> {
        RequestParams::from_json(v.as_object().unwrap())
    }

    #[test]
    fn valid_values_are_read_and_absent_ones_left_to_the_model() {
        let p = json_params(json!({"deadline_us": 20000, "priority_class": 2, "binary_data_output": true})).unwrap();
        assert_eq!(p.deadline, Some(Duration::from_millis(20)));
        assert_eq!(p.priority_class, Some(2));
        assert_eq!(json_params(json!({"deadline_us": 5e3})).unwrap().deadline, Some(Duration::from_millis(5)));
        assert_eq!(json_params(json!({})).unwrap(), RequestParams::default());
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (v, name) in [
            (json!({"deadline_us": 0}), DEADLINE_US),
            (json!({"deadline_us": -5}), DEADLINE_US),
            (json!({"deadline_us": 1.5}), DEADLINE_US),
            (json!({"deadline_us": 1e300}), DEADLINE_US),
            (json!({"deadline_us": MAX_DEADLINE_US + 1}), DEADLINE_US),
            (json!({"deadline_us": u64::MAX}), DEADLINE_US),
            (json!({"deadline_us": "20000"}), DEADLINE_US),
            (json!({"priority_class": 256}), PRIORITY_CLASS),
            (json!({"priority_class": true}), PRIORITY_CLASS),
            (json!({"priority": 1}), "priority"),
        ] {
            let e = json_params(v.clone()).unwrap_err();
            assert!(matches!(&e, InferError::Parameter { name: n, .. } if n == name), "{v}: {e}");
            assert!(e.to_string().contains(name), "{e}");
        }
        let mut g = std::collections::HashMap::new();
        g.insert(
            DEADLINE_US.to_string(),
            InferParameter { parameter_choice: Some(ParameterChoice::DoubleParam(20000.0)) },
        );
        let e = RequestParams::from_grpc(&g).unwrap_err();
        assert!(e.to_string().contains("deadline_us") && e.to_string().contains("int64_param"), "{e}");
        g.insert(DEADLINE_US.to_string(), InferParameter { parameter_choice: Some(ParameterChoice::Int64Param(-1)) });
        assert!(RequestParams::from_grpc(&g).is_err());
        g.insert(DEADLINE_US.to_string(), InferParameter { parameter_choice: Some(ParameterChoice::Int64Param(9)) });
        assert_eq!(RequestParams::from_grpc(&g).unwrap().deadline, Some(Duration::from_micros(9)));
    }
}
