//! Quality verdicts read back after a build: quants over budget that `--allow-quality` let
//! through are reported on every build, not only the one that ran their gate.

use super::Workspace;
use crate::actions::{QUALITY_JSON, QualityRecord};
use crate::exec::lockfile::LockFile;
use crate::plan::BuildPlan;
use crate::{Error, IoContext, Result};

impl Workspace {
    /// One message per exceeded budget among the built artifacts of `targets` (all when
    /// empty); artifacts not built yet are skipped.
    pub fn quality_warnings(&self, plan: &BuildPlan, targets: &[String]) -> Result<Vec<String>> {
        let sel = plan.select(targets)?;
        let lock = LockFile::read(&self.layout.lock_path())?;
        let mut out = Vec::new();
        for node in plan
            .artifacts
            .iter()
            .filter_map(|a| a.quality)
            .filter(|n| sel.nodes.contains(n))
        {
            let id = &plan.graph[node].id;
            let Some(o) = lock
                .actions
                .get(id)
                .and_then(|e| e.outputs.get(QUALITY_JSON))
            else {
                continue;
            };
            let path = self.store().object_path(&o.digest);
            let Ok(bytes) = std::fs::read(&path).with_path(&path) else {
                continue;
            };
            let record: QualityRecord =
                serde_json::from_slice(&bytes).map_err(|e| Error::format(&path, e.to_string()))?;
            out.extend(record.violations());
        }
        Ok(out)
    }
}
