//! `status`: what a build would do and why, without running or writing anything.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::Direction;
use petgraph::visit::EdgeRef;
use serde::Serialize;

use super::{BuildRequest, Workspace};
use crate::Result;
use crate::actions::{ModelfileAction, TEMPLATE_JSON, TemplateChoice};
use crate::exec::lockfile::LockFile;
use crate::exec::{ActionReport, BuildReport, Status};
use crate::plan::dirty::DirtyReason;
use crate::plan::{BuildPlan, PlanOptions, key};

/// A staleness reason with its human wording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// The structured reason.
    #[serde(flatten)]
    pub reason: DirtyReason,
    /// What `status --explain` prints for it.
    pub message: String,
}

impl From<DirtyReason> for Reason {
    fn from(reason: DirtyReason) -> Reason {
        Reason {
            message: reason.to_string(),
            reason,
        }
    }
}

/// One action's status.
#[derive(Debug, Clone, Serialize)]
pub struct StatusEntry {
    /// Action id.
    pub id: String,
    /// Action kind.
    pub kind: String,
    /// What a build would do with it.
    pub status: Status,
    /// Its key, when known.
    pub key: Option<String>,
    /// Why it would run or be restored (with `explain`).
    pub reasons: Vec<Reason>,
    /// For Modelfiles already built: the template chosen and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateChoice>,
}

/// The `--json` output of `tinylm status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Every selected action, in the order a build would visit them.
    pub actions: Vec<StatusEntry>,
    /// The dry-run build behind it (counts for the summary line).
    #[serde(skip)]
    pub build: BuildReport,
}

impl Workspace {
    /// What a build of `targets` would do; with `explain`, why each stale action must run and
    /// which template each built Modelfile uses.
    pub fn status(&self, targets: Vec<String>, explain: bool) -> Result<StatusReport> {
        let plan = self.plan(PlanOptions::default())?;
        let build = self.build(
            &plan,
            &BuildRequest {
                targets,
                keep_going: true,
                dry_run: true,
                ..Default::default()
            },
        )?;
        let lock = LockFile::read(&self.layout.lock_path())?;
        let status_of: BTreeMap<&str, Status> = build
            .details
            .iter()
            .map(|d| (d.id.as_str(), d.status))
            .collect();
        let mut actions = Vec::new();
        for d in &build.details {
            let reasons = match d.status {
                // Shown even without --explain: the build would download first.
                Status::WouldRun if d.source_not_downloaded.is_some() => d
                    .source_not_downloaded
                    .iter()
                    .map(|nd| DirtyReason::SourceNotDownloaded(nd.clone()))
                    .collect(),
                Status::WouldRun if explain => self.explain(&plan, &lock, d, &status_of),
                Status::FromCache => vec![DirtyReason::OutputsMissing {
                    out: self.project.out.clone(),
                }],
                Status::RemoteHit => vec![DirtyReason::RemoteHit {
                    remote: self
                        .store()
                        .remote()
                        .map(|r| r.url().to_string())
                        .unwrap_or_default(),
                }],
                _ => Vec::new(),
            };
            let template = explain.then(|| self.template_choice(&lock, d)).flatten();
            actions.push(StatusEntry {
                id: d.id.clone(),
                kind: d.kind.clone(),
                status: d.status,
                key: d.key.clone(),
                reasons: reasons.into_iter().map(Reason::from).collect(),
                template,
            });
        }
        Ok(StatusReport { actions, build })
    }

    /// The template a built Modelfile uses and why (its `template.json`, read from the cache).
    fn template_choice(&self, lock: &LockFile, d: &ActionReport) -> Option<TemplateChoice> {
        if d.kind != ModelfileAction::KIND || d.status == Status::WouldRun {
            return None;
        }
        let out = lock.actions.get(&d.id)?.outputs.get(TEMPLATE_JSON)?;
        let bytes = std::fs::read(self.store().object_path(&out.digest)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Why a stale action must run, from the lock and the previous action record.
    fn explain(
        &self,
        plan: &BuildPlan,
        lock: &LockFile,
        d: &ActionReport,
        status_of: &BTreeMap<&str, Status>,
    ) -> Vec<DirtyReason> {
        let Some(new) = &d.preimage else {
            // Its key is unknown until something upstream is rebuilt.
            let Some(ix) = plan.find(&d.id) else {
                return Vec::new();
            };
            let ups: BTreeSet<String> = plan
                .graph
                .edges_directed(ix, Direction::Incoming)
                .map(|e| plan.graph[e.source()].id.clone())
                .filter(|id| status_of.get(id.as_str()) == Some(&Status::WouldRun))
                .collect();
            return ups
                .into_iter()
                .map(|action| DirtyReason::UpstreamStale { action })
                .collect();
        };
        let Some(entry) = lock.actions.get(&d.id) else {
            return vec![DirtyReason::NeverBuilt];
        };
        let new_key = d.key.as_deref().unwrap_or_default();
        if entry.key.to_hex() == new_key {
            return vec![DirtyReason::OutputsNotCached];
        }
        if let Some(old) = self.store().record(&entry.key) {
            let reasons = key::diff(&old.preimage, new);
            if !reasons.is_empty() {
                return reasons;
            }
        }
        // The previous record was garbage-collected: compare input digests from the lock.
        let mut reasons = Vec::new();
        if let Some(inputs) = new.get("inputs").and_then(|v| v.as_array()) {
            for pair in inputs {
                let (Some(name), Some(digest)) = (
                    pair.get(0).and_then(|v| v.as_str()),
                    pair.get(1).and_then(|v| v.as_str()),
                ) else {
                    continue;
                };
                match entry.inputs.get(name) {
                    Some(old) if old.digest.to_hex() != digest => {
                        reasons.push(DirtyReason::InputChanged {
                            input: name.to_string(),
                            old: None,
                            new: None,
                        })
                    }
                    None => reasons.push(DirtyReason::InputAdded {
                        input: name.to_string(),
                    }),
                    _ => {}
                }
            }
        }
        if reasons.is_empty() {
            reasons.push(DirtyReason::ParamsOrVersion);
        }
        reasons
    }
}
