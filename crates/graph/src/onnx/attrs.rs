//! Typed access to a node's ONNX attributes.
//!
//! A lookup answers `Ok(None)` for an absent attribute (so each operator
//! applies its own default) and an error naming the node when the attribute is
//! present with the wrong type, instead of silently reading a zero.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, TensorProto};

use super::error::ImportError;

#[derive(Clone, Copy)]
pub struct Attrs<'a> {
    pub op_type: &'a str,
    pub list: &'a [AttributeProto],
}

impl<'a> Attrs<'a> {
    fn find(&self, name: &str, want: AttributeType, node: &str) -> Result<Option<&'a AttributeProto>, ImportError> {
        let Some(a) = self.list.iter().find(|a| a.name == name) else { return Ok(None) };
        match a.type_.enum_value() {
            Ok(t) if t == want => Ok(Some(a)),
            // Old exporters leave `type` unset; trust the field then.
            Ok(AttributeType::UNDEFINED) => Ok(Some(a)),
            other => Err(ImportError::Node {
                node: node.to_string(),
                op_type: self.op_type.to_string(),
                message: format!("attribute `{name}` should be {want:?}, found {other:?}"),
            }),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.list.iter().any(|a| a.name == name)
    }

    pub fn int(&self, name: &str, node: &str) -> Result<Option<i64>, ImportError> {
        Ok(self.find(name, AttributeType::INT, node)?.map(|a| a.i))
    }

    pub fn ints(&self, name: &str, node: &str) -> Result<Option<Vec<i64>>, ImportError> {
        Ok(self.find(name, AttributeType::INTS, node)?.map(|a| a.ints.clone()))
    }

    pub fn float(&self, name: &str, node: &str) -> Result<Option<f32>, ImportError> {
        Ok(self.find(name, AttributeType::FLOAT, node)?.map(|a| a.f))
    }

    pub fn floats(&self, name: &str, node: &str) -> Result<Option<Vec<f32>>, ImportError> {
        Ok(self.find(name, AttributeType::FLOATS, node)?.map(|a| a.floats.clone()))
    }

    pub fn string(&self, name: &str, node: &str) -> Result<Option<String>, ImportError> {
        Ok(self.find(name, AttributeType::STRING, node)?.map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    pub fn strings(&self, name: &str, node: &str) -> Result<Option<Vec<String>>, ImportError> {
        Ok(self
            .find(name, AttributeType::STRINGS, node)?
            .map(|a| a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect()))
    }

    pub fn graph(&self, name: &str, node: &str) -> Result<Option<&'a onnx_protobuf::GraphProto>, ImportError> {
        Ok(self.find(name, AttributeType::GRAPH, node)?.and_then(|a| a.g.as_ref()))
    }

    pub fn tensor(&self, name: &str, node: &str) -> Result<Option<&'a TensorProto>, ImportError> {
        match self.find(name, AttributeType::TENSOR, node)? {
            Some(a) => match a.t.as_ref() {
                Some(t) => Ok(Some(t)),
                None => Err(ImportError::Node {
                    node: node.to_string(),
                    op_type: self.op_type.to_string(),
                    message: format!("attribute `{name}` holds no tensor"),
                }),
            },
            None => Ok(None),
        }
    }
}
