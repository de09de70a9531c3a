//! tiny-lm sources through the manifest: the exported HF folder equals `tinylm convert --to hf`.

use std::path::PathBuf;

use crate::support::{self, Project};

fn fixture(arch: &str) -> PathBuf {
    support::fixture(&format!("tinylm-{arch}"))
}

#[test]
fn manifest_export_equals_one_shot_convert_byte_for_byte() {
    for arch in ["gpt2", "llama3"] {
        let f = fixture(arch);
        let p = Project::new();
        p.write(
            "tinylm.toml",
            &format!(
                "[project]\nname = \"t\"\nversion = \"1\"\n\n[models.{arch}]\nexport_hf = true\n\
                 source.tinylm = {{ checkpoint = {:?}, config = {:?}, tokenizer = {:?}, tokenizer_config = {:?} }}\n",
                f.join("last.ckpt"),
                f.join("model.yaml"),
                f.join("tokenizer.pkl"),
                f.join("tokenizer.yaml"),
            ),
        );
        let report = p.build(&[]);
        let export = report["details"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == format!("export_hf:{arch}"))
            .unwrap();
        assert_eq!(export["status"], "run", "{report}");

        let one_shot = p.path().join("one-shot");
        let out = p.run(&[
            "convert",
            f.join("last.ckpt").to_str().unwrap(),
            "--to",
            "hf",
            "-o",
            one_shot.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let via_manifest = p.tree(&format!("dist/{arch}/hf"));
        let direct = p.tree("one-shot");
        assert_eq!(via_manifest.len(), 6);
        assert_eq!(
            via_manifest.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            direct.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        for ((name, a), (_, b)) in via_manifest.iter().zip(&direct) {
            assert!(
                a == b,
                "{arch}: {name} differs between the manifest build and tinylm convert"
            );
        }
    }
}
