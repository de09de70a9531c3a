//! tiny-lm checkpoint → GGUF directly equals checkpoint → HF folder on disk → GGUF, byte for byte.

use tinylm::convert::hf::HfModel;
use tinylm::convert::hf_to_gguf::{self, GgufOptions, OutType, PreSource};
use tinylm::convert::tinylm_to_hf::{self, ExportOptions};
use tinylm::formats::DType;

use crate::support;

fn check(fixture: &str) {
    let inputs = support::tinylm_inputs(&support::fixture(fixture));
    let export = ExportOptions {
        dtype: DType::F32,
        dir_name: fixture.to_string(),
    };
    let direct = tinylm_to_hf::export(&inputs, &export).expect("export");
    let tmp = tempfile::tempdir().unwrap();
    let hf_dir = tmp.path().join(fixture);
    tinylm_to_hf::write_hf_dir(&direct, &hf_dir).expect("write hf dir");
    let from_disk = HfModel::open(&hf_dir).expect("open hf dir");
    for outtype in [OutType::F32, OutType::F16, OutType::Q8_0] {
        let opts = GgufOptions {
            outtype,
            ..Default::default()
        };
        let mut a = Vec::new();
        let ra = hf_to_gguf::convert(&direct, &opts, &mut a).expect("direct");
        let mut b = Vec::new();
        hf_to_gguf::convert(&from_disk, &opts, &mut b).expect("via HF folder");
        assert!(
            a == b,
            "{fixture} {}: direct and via-HF GGUFs differ",
            outtype.name()
        );
        // tiny-lm's `\p{N}{1,2}` split has no exact llama.cpp counterpart
        assert_eq!(ra.pre, "llama-bpe");
        assert!(matches!(ra.pre_source, PreSource::Approximation(_)));
    }
}

#[test]
fn tinylm_gpt2_direct_equals_via_hf_folder() {
    check("tinylm-gpt2");
}

#[test]
fn tinylm_llama3_direct_equals_via_hf_folder() {
    check("tinylm-llama3");
}
