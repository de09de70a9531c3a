//! `lint` of the manifest's artifacts: builds what they need, then reads each lint report.

use serde::Serialize;

use super::{BuildRequest, Workspace};
use crate::actions::LINT_JSON;
use crate::exec::BuildReport;
use crate::exec::lockfile::LockFile;
use crate::plan::PlanOptions;
use crate::template::lint::LintRecord;
use crate::{Error, IoContext, Result};

/// The lint report of one built (model, quant).
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactLint {
    /// `model` or `model:quant`.
    pub artifact: String,
    /// Its `lint.json`.
    pub report: LintRecord,
}

impl Workspace {
    /// Builds what linting `target` (default: every model) needs, leniently so that every
    /// report is produced, and returns the build and the lint report of each artifact.
    pub fn lint(&self, target: Option<&str>) -> Result<(BuildReport, Vec<ArtifactLint>)> {
        let plan = self.plan(PlanOptions {
            allow_lint: true,
            // Lint is about templates; a quant over its quality budget must not hide its report.
            allow_quality: true,
        })?;
        let req = BuildRequest {
            targets: target.map(|t| vec![t.to_string()]).unwrap_or_default(),
            keep_going: true,
            interruptible: true,
            ..Default::default()
        };
        let build = self.build(&plan, &req)?;
        let sel = plan.select(&req.targets)?;
        let lock = LockFile::read(&self.layout.lock_path())?;
        let mut all = Vec::new();
        for a in plan
            .artifacts
            .iter()
            .filter(|a| sel.nodes.contains(&a.lint))
        {
            let id = &plan.graph[a.lint].id;
            let Some(o) = lock.actions.get(id).and_then(|e| e.outputs.get(LINT_JSON)) else {
                continue;
            };
            let path = self.store().object_path(&o.digest);
            let report: LintRecord =
                serde_json::from_slice(&std::fs::read(&path).with_path(&path)?)
                    .map_err(|e| Error::format(&path, e.to_string()))?;
            let artifact = format!(
                "{}{}",
                a.model,
                a.quant
                    .as_ref()
                    .map(|q| format!(":{q}"))
                    .unwrap_or_default()
            );
            all.push(ArtifactLint { artifact, report });
        }
        Ok((build, all))
    }
}
