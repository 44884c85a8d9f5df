//! What a CIFAR binary batch holds: the two variants, their record
//! layout, and the columns a table of them has.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Which of the two datasets a table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CifarVariant {
    Cifar10,
    Cifar100,
}

impl CifarVariant {
    /// Bytes per record: label byte(s) and 3 x 32 x 32 pixels.
    pub fn record_size(self) -> usize {
        self.label_bytes() + 3 * 32 * 32
    }

    /// Label bytes before the pixels of each record.
    pub fn label_bytes(self) -> usize {
        match self {
            CifarVariant::Cifar10 => 1,
            CifarVariant::Cifar100 => 2,
        }
    }

    /// Number of (fine) classes.
    pub fn classes(self) -> u8 {
        match self {
            CifarVariant::Cifar10 => 10,
            CifarVariant::Cifar100 => 100,
        }
    }

    /// The dataset's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            CifarVariant::Cifar10 => "CIFAR-10",
            CifarVariant::Cifar100 => "CIFAR-100",
        }
    }
}

/// Number of CIFAR-100 coarse classes (superclasses).
pub const CIFAR100_COARSE_CLASSES: u8 = 20;

/// The columns of a CIFAR table.
pub fn cifar_schema(variant: CifarVariant) -> SchemaRef {
    let mut fields = vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("split", DataType::Utf8, false),
        Field::new("label", DataType::Int32, false),
    ];
    if variant == CifarVariant::Cifar100 {
        fields.push(Field::new("coarse_label", DataType::Int32, false));
    }
    fields.push(Field::new("image", DataType::Binary, false));
    Arc::new(Schema::new(fields))
}
