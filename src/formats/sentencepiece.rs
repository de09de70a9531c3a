//! SentencePiece `tokenizer.model` files: the `ModelProto` protobuf of
//! [sentencepiece_model.proto](https://github.com/google/sentencepiece/blob/master/src/sentencepiece_model.proto).
//!
//! Only the fields tinylm reads are declared (pieces, the trainer's model type and byte
//! fallback, the normalizer flags); prost skips the others, as any protobuf reader does with
//! unknown fields. The messages are declared by hand with prost's derive, so no `protoc` is
//! needed at build time.

use std::path::Path;

use prost::Message;

use super::FileError;

/// `ModelProto.SentencePiece.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PieceType {
    /// A normal piece.
    Normal = 1,
    /// The unknown piece (`<unk>`).
    Unknown = 2,
    /// A control piece (`<s>`, `</s>`): never produced from text.
    Control = 3,
    /// A user-defined piece: always matched as a whole.
    UserDefined = 4,
    /// An unused piece.
    Unused = 5,
    /// A byte-fallback piece (`<0x0A>`).
    Byte = 6,
}

/// `ModelProto.SentencePiece`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SentencePiece {
    /// The piece's text (`▁` for spaces).
    #[prost(string, optional, tag = "1")]
    pub piece: Option<String>,
    /// Its score (log probability for unigram models, merge rank for BPE models).
    #[prost(float, optional, tag = "2")]
    pub score: Option<f32>,
    /// Its type.
    #[prost(enumeration = "PieceType", optional, tag = "3")]
    pub r#type: Option<i32>,
}

/// `TrainerSpec.ModelType`.
pub mod model_type {
    /// Unigram language model.
    pub const UNIGRAM: i32 = 1;
    /// Byte-pair encoding.
    pub const BPE: i32 = 2;
    /// Whitespace-delimited words.
    pub const WORD: i32 = 3;
    /// Characters.
    pub const CHAR: i32 = 4;
}

/// `ModelProto.TrainerSpec` (the fields tinylm reads).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrainerSpec {
    /// [`model_type`] (default unigram).
    #[prost(int32, optional, tag = "3")]
    pub model_type: Option<i32>,
    /// Vocabulary size the model was trained for.
    #[prost(int32, optional, tag = "4")]
    pub vocab_size: Option<i32>,
    /// Unknown characters become their UTF-8 byte pieces.
    #[prost(bool, optional, tag = "35")]
    pub byte_fallback: Option<bool>,
    /// The unknown piece's id.
    #[prost(int32, optional, tag = "40")]
    pub unk_id: Option<i32>,
    /// The BOS piece's id (-1: none).
    #[prost(int32, optional, tag = "41")]
    pub bos_id: Option<i32>,
    /// The EOS piece's id (-1: none).
    #[prost(int32, optional, tag = "42")]
    pub eos_id: Option<i32>,
    /// The padding piece's id (-1: none).
    #[prost(int32, optional, tag = "43")]
    pub pad_id: Option<i32>,
}

/// `ModelProto.NormalizerSpec` (the fields tinylm reads).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NormalizerSpec {
    /// Rule name (`identity`, `nmt_nfkc`, …).
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// The compiled normalization rules (empty for `identity`).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub precompiled_charsmap: Option<Vec<u8>>,
    /// A `▁` is put before the text (default true).
    #[prost(bool, optional, tag = "3")]
    pub add_dummy_prefix: Option<bool>,
    /// Leading, trailing and repeated whitespace is removed (default true).
    #[prost(bool, optional, tag = "4")]
    pub remove_extra_whitespaces: Option<bool>,
    /// Spaces become `▁` (default true).
    #[prost(bool, optional, tag = "5")]
    pub escape_whitespaces: Option<bool>,
}

/// `ModelProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// The vocabulary, in id order.
    #[prost(message, repeated, tag = "1")]
    pub pieces: Vec<SentencePiece>,
    /// How the model was trained.
    #[prost(message, optional, tag = "2")]
    pub trainer_spec: Option<TrainerSpec>,
    /// How text is normalized before encoding.
    #[prost(message, optional, tag = "3")]
    pub normalizer_spec: Option<NormalizerSpec>,
}

/// One vocabulary entry of a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The piece's text.
    pub text: String,
    /// Its score.
    pub score: f32,
    /// Its type.
    pub kind: PieceType,
}

/// A validated SentencePiece model: what `SentencePieceProcessor` exposes per id.
#[derive(Debug, Clone)]
pub struct SpmModel {
    /// The vocabulary, in id order.
    pub pieces: Vec<Piece>,
    /// [`model_type`] of the trainer (unigram when unset).
    pub model_type: i32,
    /// Whether unknown characters fall back to byte pieces.
    pub byte_fallback: bool,
    /// Normalizer: a `▁` is put before the text.
    pub add_dummy_prefix: bool,
    /// Normalizer: extra whitespace is removed.
    pub remove_extra_whitespaces: bool,
    /// Normalizer: spaces become `▁`.
    pub escape_whitespaces: bool,
    /// Normalizer rule name.
    pub normalizer_name: String,
}

impl SpmModel {
    /// Parses and validates `tokenizer.model` bytes (`path` names the file in errors). The
    /// checks are the ones `SentencePieceProcessor::Load` makes before the model can be used.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<SpmModel, FileError> {
        let proto = ModelProto::decode(bytes).map_err(|e| {
            FileError::invalid(
                path,
                format!(
                    "not a SentencePiece model (the ModelProto protobuf could not be decoded: {e}); \
                     tokenizer.model must be the file the sentencepiece trainer wrote"
                ),
            )
        })?;
        if proto.pieces.is_empty() {
            return Err(FileError::invalid(
                path,
                "the SentencePiece model has no pieces",
            ));
        }
        let mut pieces = Vec::with_capacity(proto.pieces.len());
        let mut seen = std::collections::HashMap::with_capacity(proto.pieces.len());
        let mut unknown = Vec::new();
        for (id, p) in proto.pieces.into_iter().enumerate() {
            let text = p.piece.unwrap_or_default();
            let raw_kind = p.r#type.unwrap_or(PieceType::Normal as i32);
            let kind = PieceType::try_from(raw_kind).map_err(|_| {
                FileError::invalid(
                    path,
                    format!("piece {id} ({text:?}) has unknown type {raw_kind}"),
                )
            })?;
            if text.is_empty() {
                return Err(FileError::invalid(path, format!("piece {id} is empty")));
            }
            if let Some(prev) = seen.insert(text.clone(), id) {
                return Err(FileError::invalid(
                    path,
                    format!("piece {text:?} is defined twice (ids {prev} and {id})"),
                ));
            }
            if kind == PieceType::Unknown {
                unknown.push(id);
            }
            pieces.push(Piece {
                text,
                score: p.score.unwrap_or(0.0),
                kind,
            });
        }
        match unknown.len() {
            1 => {}
            0 => {
                return Err(FileError::invalid(
                    path,
                    "the SentencePiece model defines no unknown piece (type UNKNOWN)",
                ));
            }
            _ => {
                return Err(FileError::invalid(
                    path,
                    format!(
                        "the SentencePiece model defines {} unknown pieces (ids {unknown:?}); it must define one",
                        unknown.len()
                    ),
                ));
            }
        }
        let ts = proto.trainer_spec.unwrap_or_default();
        let ns = proto.normalizer_spec.unwrap_or_default();
        Ok(SpmModel {
            pieces,
            model_type: ts.model_type.unwrap_or(model_type::UNIGRAM),
            byte_fallback: ts.byte_fallback.unwrap_or(false),
            add_dummy_prefix: ns.add_dummy_prefix.unwrap_or(true),
            remove_extra_whitespaces: ns.remove_extra_whitespaces.unwrap_or(true),
            escape_whitespaces: ns.escape_whitespaces.unwrap_or(true),
            normalizer_name: ns.name.unwrap_or_default(),
        })
    }

    /// Number of pieces (`SentencePieceProcessor::GetPieceSize`).
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Whether the model has no pieces (never true for a parsed model).
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(pieces: &[(&str, f32, PieceType)]) -> Vec<u8> {
        ModelProto {
            pieces: pieces
                .iter()
                .map(|(t, s, k)| SentencePiece {
                    piece: Some((*t).into()),
                    score: Some(*s),
                    r#type: Some(*k as i32),
                })
                .collect(),
            trainer_spec: Some(TrainerSpec {
                model_type: Some(model_type::BPE),
                byte_fallback: Some(true),
                ..Default::default()
            }),
            normalizer_spec: Some(NormalizerSpec {
                add_dummy_prefix: Some(false),
                ..Default::default()
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn round_trips_pieces_and_specs() {
        let bytes = model(&[
            ("<unk>", 0.0, PieceType::Unknown),
            ("<s>", 0.0, PieceType::Control),
            ("<0x0A>", 0.0, PieceType::Byte),
            ("\u{2581}the", -1.5, PieceType::Normal),
        ]);
        let m = SpmModel::parse(&bytes, Path::new("tokenizer.model")).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m.pieces[3].text, "\u{2581}the");
        assert_eq!(m.pieces[3].score, -1.5);
        assert_eq!(m.pieces[2].kind, PieceType::Byte);
        assert_eq!(m.model_type, model_type::BPE);
        assert!(m.byte_fallback);
        assert!(!m.add_dummy_prefix);
        assert!(m.remove_extra_whitespaces, "proto2 default");
    }

    #[test]
    fn rejects_what_sentencepiece_rejects() {
        let p = Path::new("m/tokenizer.model");
        let err = |b: &[u8]| SpmModel::parse(b, p).unwrap_err().to_string();
        assert!(err(b"\xff\xff\xff").contains("not a SentencePiece model"));
        assert!(err(b"").contains("no pieces"));
        let e = err(&model(&[("a", 0.0, PieceType::Normal)]));
        assert!(e.contains("no unknown piece"), "{e}");
        let e = err(&model(&[
            ("<unk>", 0.0, PieceType::Unknown),
            ("a", 0.0, PieceType::Normal),
            ("a", 0.0, PieceType::Normal),
        ]));
        assert!(e.contains("\"a\" is defined twice (ids 1 and 2)"), "{e}");
        assert!(e.starts_with("m/tokenizer.model"), "{e}");
    }
}
