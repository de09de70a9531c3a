//! The build plan: a DAG of actions (petgraph) derived from the validated manifest.
//!
//! Planning is pure: it reads no file contents. Each node has an action, named inputs (source
//! files, source directories, or other nodes' outputs) and belongs to target groups (`model`,
//! `model:quant`, `release`). Materializations say which outputs appear where under `out/`.
//!
//! Node ids and output paths, per model `m` and quant `q`:
//! - `export_hf:m` → `m/hf/*` (tiny-lm sources with `export_hf = true`)
//! - `gguf:m` (converted base GGUF) · `import:m` (a source GGUF used as is)
//! - `imatrix:m` → `m/m.imatrix.gguf` (an imatrix computed from the base GGUF, when a quant
//!   uses one)
//! - `quantize:m:q` → `m/m-q.gguf` (`q` is the quant's name)
//! - `modelfile:m:q` → `m/m-q.Modelfile` (`m/m.gguf` and `m/m.Modelfile` without quants)
//! - with `[eval]`: `eval:m:q` (scores the artifact, against the base GGUF unless it is the
//!   base), `quality:m:q` (its budgets, if any) and `parity:m` (source weights vs a float base
//!   GGUF, for `hf`/`tinylm` sources); their records feed the release
//! - `release:r` → `releases/r-version/{GGUFs, Modelfiles, SHA256SUMS, release.json}`

pub mod dirty;
pub mod graph;
pub(crate) mod key;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};

use crate::actions::{
    Action, EVAL_JSON, EvalAction, ExportHfAction, GgufAction, GgufSource, HF_FILES, IMATRIX_GGUF,
    ImatrixAction, ImportGguf, LINT_JSON, LintAction, MODEL_GGUF, MODELFILE, ModelfileAction,
    ModelfileTemplate, PARITY_JSON, ParityAction, ParitySource, QUALITY_JSON, QualityAction,
    QualityBudget, QuantizeAction, README_MD, RELEASE_JSON, REPORT_JSON, ReleaseAction,
    ReleaseImatrix, ReleaseItem, SHA256SUMS, TEMPLATE_JSON,
};
use crate::convert::hf_to_gguf::OutType;
use crate::hub::NotDownloaded;
use crate::manifest::{
    EvalSpec, ImatrixSpec, ModelSpec, Project, SourceSpec, TemplateSpec, base_file_type, closest,
    quant_name,
};
use crate::quant::FileType;
use crate::{Error, Result};

/// Where an input comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A source file.
    File(PathBuf),
    /// A source directory (hashed as a sorted listing of its files).
    Dir(PathBuf),
    /// Output `output` of another node.
    Output {
        /// Producing node.
        node: NodeIndex,
        /// Output name.
        output: String,
    },
}

/// One action of the plan.
#[derive(Debug)]
pub struct Node {
    /// Stable id (`quantize:tiny:q8_0`).
    pub id: String,
    /// What it does.
    pub action: Box<dyn Action>,
    /// Named inputs, in key order.
    pub inputs: Vec<(String, Input)>,
    /// Target groups selecting this node directly.
    pub groups: Vec<String>,
}

/// An output that appears under `out/`.
#[derive(Debug, Clone)]
pub struct Materialization {
    /// Node producing the content.
    pub node: NodeIndex,
    /// Output name on that node.
    pub output: String,
    /// Path relative to the output directory.
    pub dest: PathBuf,
    /// Node this file is reported under (the release node for release bundles).
    pub owner: NodeIndex,
    /// Group for stale-output cleanup: `model:<name>` or `release:<name>`.
    pub group: String,
}

/// The whole plan.
#[derive(Debug, Default)]
pub struct BuildPlan {
    /// Nodes, with edges from producer to consumer.
    pub graph: DiGraph<Node, String>,
    /// Outputs to put under `out/`.
    pub materializations: Vec<Materialization>,
    /// Every (model, quant) artifact.
    pub artifacts: Vec<Artifact>,
    /// Source paths outside the project (Hub snapshots, Ollama blobs) and how `tinylm.lock`
    /// names them, so the lock is the same on every machine.
    pub locators: BTreeMap<PathBuf, String>,
    /// Hub sources the cache lacks (`status`, `build -n`): their paths do not exist, and the
    /// actions reading them would run once a build downloaded them.
    pub not_downloaded: BTreeMap<PathBuf, NotDownloaded>,
}

/// Choices that change actions but are not in the manifest.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Lint errors become warnings (`--allow-lint`).
    pub allow_lint: bool,
    /// Quality budgets exceeded become warnings (`--allow-quality`).
    pub allow_quality: bool,
}

/// A subset of the plan chosen by targets.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Nodes to build (targets plus their dependencies).
    pub nodes: BTreeSet<NodeIndex>,
    /// Groups whose stale outputs may be cleaned.
    pub groups: BTreeSet<String>,
    /// Whether everything was selected: then outputs of models and releases that left the
    /// manifest are stale too.
    pub all: bool,
}

/// File name stem of a model's artifact: `m-q` (`q` the quant's name), or `m` for a GGUF used
/// as is.
pub fn artifact_stem(model: &str, quant: Option<&str>) -> String {
    match quant {
        Some(q) => format!("{model}-{q}"),
        None => model.to_string(),
    }
}

impl BuildPlan {
    fn add(
        &mut self,
        id: String,
        action: Box<dyn Action>,
        inputs: Vec<(String, Input)>,
        groups: Vec<String>,
    ) -> NodeIndex {
        let ix = self.graph.add_node(Node {
            id,
            action,
            inputs: inputs.clone(),
            groups,
        });
        for (_, input) in inputs {
            if let Input::Output { node, output } = input {
                self.graph.add_edge(node, ix, output);
            }
        }
        ix
    }

    fn materialize(
        &mut self,
        node: NodeIndex,
        output: &str,
        dest: PathBuf,
        owner: NodeIndex,
        group: &str,
    ) {
        self.materializations.push(Materialization {
            node,
            output: output.to_string(),
            dest,
            owner,
            group: group.to_string(),
        });
    }

    /// The node with id `id`.
    pub fn find(&self, id: &str) -> Option<NodeIndex> {
        self.graph.node_indices().find(|&i| self.graph[i].id == id)
    }

    /// Every target name, for help and did-you-mean.
    pub fn targets(&self) -> BTreeSet<String> {
        self.graph
            .node_weights()
            .flat_map(|n| n.groups.iter().cloned())
            .collect()
    }

    /// Selects targets and their dependencies; no targets selects everything.
    pub fn select(&self, targets: &[String]) -> Result<Selection> {
        let all_groups = self.targets();
        let mut roots = Vec::new();
        let mut groups = BTreeSet::new();
        if targets.is_empty() {
            roots.extend(self.graph.node_indices());
            groups.extend(self.materializations.iter().map(|m| m.group.clone()));
        }
        for t in targets {
            let t_norm = t.to_lowercase();
            let matched: Vec<NodeIndex> = self
                .graph
                .node_indices()
                .filter(|&i| {
                    self.graph[i]
                        .groups
                        .iter()
                        .any(|g| g.to_lowercase() == t_norm)
                })
                .collect();
            if matched.is_empty() {
                let hint = closest(t, all_groups.iter().map(String::as_str))
                    .map(|c| format!("did you mean `{c}`? "))
                    .unwrap_or_default();
                return Err(Error::Usage(format!(
                    "unknown target `{t}`; {hint}targets are: {}",
                    all_groups.iter().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            roots.extend(matched);
            // Cleanup is scoped to whole models or releases named on the command line.
            let base = t.split(':').next().unwrap_or(t);
            if !t.contains(':') {
                groups.insert(format!("model:{base}"));
                groups.insert(format!("release:{base}"));
            }
        }
        let mut nodes = BTreeSet::new();
        let rev = Reversed(&self.graph);
        for r in roots {
            let mut dfs = Dfs::new(rev, r);
            while let Some(n) = dfs.next(rev) {
                nodes.insert(n);
            }
        }
        Ok(Selection {
            nodes,
            groups,
            all: targets.is_empty(),
        })
    }

    /// Topological order of the whole graph (the planner never creates cycles).
    pub fn topo_order(&self) -> Vec<NodeIndex> {
        petgraph::algo::toposort(&self.graph, None).unwrap_or_default()
    }
}

/// Builds the plan for a validated project.
pub fn plan(project: &Project, opts: PlanOptions) -> Result<BuildPlan> {
    let mut p = BuildPlan::default();
    // Keyed by quant name, so artifacts come out sorted as their names are.
    let mut artifacts: BTreeMap<(String, Option<String>), Artifact> = BTreeMap::new();
    for model in project.models.values() {
        plan_model(&mut p, model, project.eval.as_ref(), opts, &mut artifacts)?;
    }
    p.artifacts = artifacts.values().cloned().collect();
    for rel in project.releases.values() {
        let dir = PathBuf::from("releases").join(format!("{}-{}", rel.name, rel.version));
        let group = format!("release:{}", rel.name);
        let mut inputs = Vec::new();
        let mut items = Vec::new();
        let mut links = Vec::new();
        for (model, quant) in &rel.items {
            let a = artifacts
                .get(&(model.clone(), quant.clone()))
                .ok_or_else(|| {
                    Error::Build(format!("internal error: no artifact for {model}:{quant:?}"))
                })?;
            let stem = artifact_stem(model, quant.as_deref());
            let item = ReleaseItem {
                model: model.clone(),
                quant: quant.clone(),
                quant_type: a.quant_type.map(quant_name),
                imatrix: a.imatrix.as_ref().map(|(_, im)| im.clone()),
                eval: a.eval.map(|_| format!("eval/{stem}")),
                quality: a.quality.map(|_| format!("quality/{stem}")),
                parity: a.parity.map(|_| format!("parity/{model}")),
                gguf_file: format!("{stem}.gguf"),
                modelfile_file: format!("{stem}.Modelfile"),
                sources: a
                    .sources
                    .iter()
                    .map(|(n, _)| format!("source/{model}/{n}"))
                    .collect(),
                report: a.report.as_ref().map(|_| format!("report/{stem}")),
                lint: format!("lint/{stem}"),
                template: format!("template/{stem}"),
            };
            inputs.push((
                item.lint.clone(),
                Input::Output {
                    node: a.lint,
                    output: LINT_JSON.into(),
                },
            ));
            inputs.push((
                item.template.clone(),
                Input::Output {
                    node: a.modelfile,
                    output: TEMPLATE_JSON.into(),
                },
            ));
            inputs.push((
                ReleaseAction::gguf_input(&item),
                Input::Output {
                    node: a.gguf.0,
                    output: a.gguf.1.clone(),
                },
            ));
            inputs.push((
                ReleaseAction::modelfile_input(&item),
                Input::Output {
                    node: a.modelfile,
                    output: MODELFILE.into(),
                },
            ));
            if let Some((node, output)) = &a.report {
                inputs.push((
                    format!("report/{stem}"),
                    Input::Output {
                        node: *node,
                        output: output.clone(),
                    },
                ));
            }
            for (n, input) in &a.sources {
                inputs.push((format!("source/{model}/{n}"), input.clone()));
            }
            for (node, input, output) in [
                (a.eval, item.eval.as_ref(), EVAL_JSON),
                (a.quality, item.quality.as_ref(), QUALITY_JSON),
                (a.parity, item.parity.as_ref(), PARITY_JSON),
            ] {
                if let (Some(node), Some(input)) = (node, input)
                    && !inputs.iter().any(|(n, _)| n == input)
                {
                    inputs.push((
                        input.clone(),
                        Input::Output {
                            node,
                            output: output.into(),
                        },
                    ));
                }
            }
            if let Some((input, im)) = &a.imatrix
                && !inputs.iter().any(|(n, _)| *n == im.input)
            {
                inputs.push((im.input.clone(), input.clone()));
            }
            links.push((a.gguf.clone(), dir.join(&item.gguf_file)));
            links.push((
                (a.modelfile, MODELFILE.to_string()),
                dir.join(&item.modelfile_file),
            ));
            items.push(item);
        }
        let action = ReleaseAction {
            name: rel.name.clone(),
            version: rel.version.clone(),
            items,
        };
        let node = p.add(
            format!("release:{}", rel.name),
            Box::new(action),
            inputs,
            vec![rel.name.clone()],
        );
        for ((src, out), dest) in links {
            p.materialize(src, &out, dest, node, &group);
        }
        for out in [SHA256SUMS, RELEASE_JSON, README_MD] {
            p.materialize(node, out, dir.join(out), node, &group);
        }
    }
    Ok(p)
}

/// One shippable (model, quant): where its GGUF, Modelfile and lint report come from.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Model name.
    pub model: String,
    /// Quant name, or `None` for a GGUF used as is.
    pub quant: Option<String>,
    /// The quant's file type.
    pub quant_type: Option<FileType>,
    /// The imatrix it was quantized with, and how the release describes it.
    pub imatrix: Option<(Input, ReleaseImatrix)>,
    /// Node scoring it (output `eval.json`), with `[eval]`.
    pub eval: Option<NodeIndex>,
    /// Node holding it to its quality budgets (output `quality.json`).
    pub quality: Option<NodeIndex>,
    /// Node checking the model's conversion (output `parity.json`), with `[eval]`.
    pub parity: Option<NodeIndex>,
    /// Node and output name of the GGUF.
    pub gguf: (NodeIndex, String),
    /// Node writing the Modelfile (outputs `Modelfile`, `template.json`).
    pub modelfile: NodeIndex,
    /// Node linting it (output `lint.json`).
    pub lint: NodeIndex,
    /// Node and output of the quantization report, if quantized.
    pub report: Option<(NodeIndex, String)>,
    /// The model's source inputs.
    pub sources: Vec<(String, Input)>,
}

fn plan_model(
    p: &mut BuildPlan,
    m: &ModelSpec,
    eval: Option<&EvalSpec>,
    opts: PlanOptions,
    artifacts: &mut BTreeMap<(String, Option<String>), Artifact>,
) -> Result<()> {
    let name = &m.name;
    let group = format!("model:{name}");
    if let Some(o) = &m.origin {
        p.locators.insert(o.path.clone(), o.locator.clone());
        if let Some(nd) = &o.not_downloaded {
            p.not_downloaded.insert(o.path.clone(), nd.clone());
        }
    }
    let sources: Vec<(String, Input)> = match &m.source {
        SourceSpec::HfHub(h) => {
            return Err(Error::Build(format!(
                "internal error: model `{name}`: {}@{} was not resolved before planning",
                h.repo, h.revision
            )));
        }
        SourceSpec::Ollama(o) => {
            return Err(Error::Build(format!(
                "internal error: model `{name}`: ollama model {o} was not resolved before planning"
            )));
        }
        SourceSpec::Gguf(path) => vec![("gguf".into(), Input::File(path.clone()))],
        SourceSpec::Hf(dir) => vec![("hf".into(), Input::Dir(dir.clone()))],
        SourceSpec::TinyLm(t) => {
            let mut v = vec![
                ("checkpoint".into(), Input::File(t.checkpoint.clone())),
                ("config".into(), Input::File(t.config.clone())),
                ("tokenizer".into(), Input::File(t.tokenizer.clone())),
            ];
            if let Some(tc) = &t.tokenizer_config {
                v.push(("tokenizer_config".into(), Input::File(tc.clone())));
            }
            v
        }
    };

    // The base GGUF every quant derives from, and the quant it already is, if any.
    let (base, base_quant): ((NodeIndex, String), Option<FileType>) = match &m.source {
        SourceSpec::Gguf(path) if m.quants.is_empty() => {
            let node = p.add(
                format!("import:{name}"),
                Box::new(ImportGguf),
                vec![("source".into(), Input::File(path.clone()))],
                vec![name.clone()],
            );
            ((node, MODEL_GGUF.into()), None)
        }
        SourceSpec::Gguf(_) | SourceSpec::HfHub(_) | SourceSpec::Ollama(_) => {
            ((NodeIndex::end(), String::new()), None)
        }
        SourceSpec::Hf(_) | SourceSpec::TinyLm(_) => {
            let source = match &m.source {
                SourceSpec::TinyLm(t) => GgufSource::TinyLm(ExportHfAction {
                    arch: t.arch,
                    dtype: t.dtype,
                    dir_name: name.clone(),
                }),
                // The reference derives `general.name` from the folder's name; a Hub snapshot
                // is named as `hf download --local-dir NAME` would name it.
                _ => GgufSource::Hf {
                    dir_name: match (&m.origin, &m.source) {
                        (Some(o), _) => o.name.clone(),
                        (None, SourceSpec::Hf(dir)) => dir
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        _ => String::new(),
                    },
                },
            };
            if let (SourceSpec::TinyLm(t), true) = (&m.source, m.export_hf) {
                let node = p.add(
                    format!("export_hf:{name}"),
                    Box::new(ExportHfAction {
                        arch: t.arch,
                        dtype: t.dtype,
                        dir_name: name.clone(),
                    }),
                    sources.clone(),
                    vec![name.clone()],
                );
                for f in HF_FILES {
                    p.materialize(
                        node,
                        f,
                        PathBuf::from(name).join("hf").join(f),
                        node,
                        &group,
                    );
                }
            }
            let node = p.add(
                format!("gguf:{name}"),
                Box::new(GgufAction {
                    source,
                    outtype: m.outtype,
                    pre: m.pre.clone(),
                }),
                sources.clone(),
                vec![name.clone()],
            );
            ((node, MODEL_GGUF.into()), base_file_type(m.outtype))
        }
    };

    // Conversion parity, with [eval]: source weights vs the converted base GGUF, when that is
    // a float GGUF (a q8_0 base differs by more than rounding).
    let parity = match (&m.source, eval) {
        (SourceSpec::Gguf(_), _) | (_, None) => None,
        _ if matches!(m.outtype, OutType::Q8_0) => None,
        (src, Some(_)) => {
            let source = match src {
                SourceSpec::TinyLm(t) => ParitySource::TinyLm(ExportHfAction {
                    arch: t.arch,
                    dtype: t.dtype,
                    dir_name: name.clone(),
                }),
                _ => ParitySource::Hf,
            };
            let mut inputs = sources.clone();
            inputs.push((
                "gguf".into(),
                Input::Output {
                    node: base.0,
                    output: base.1.clone(),
                },
            ));
            Some(p.add(
                format!("parity:{name}"),
                Box::new(ParityAction {
                    model: name.clone(),
                    source,
                }),
                inputs,
                vec![name.clone()],
            ))
        }
    };

    // The importance matrix, planned only when a quant uses it.
    let imatrix: Option<(Input, ReleaseImatrix)> = match &m.imatrix {
        _ if !m.quants.iter().any(|q| q.imatrix) => None,
        None => None,
        Some(ImatrixSpec::File { path, given }) => Some((
            Input::File(path.clone()),
            ReleaseImatrix {
                input: format!("imatrix/{name}"),
                file: given.clone(),
                computed: false,
            },
        )),
        Some(ImatrixSpec::Compute {
            text,
            text_given,
            ctx,
            chunks,
        }) => {
            let model_input = match &m.source {
                SourceSpec::Gguf(path) => Input::File(path.clone()),
                _ => Input::Output {
                    node: base.0,
                    output: base.1.clone(),
                },
            };
            let node = p.add(
                format!("imatrix:{name}"),
                Box::new(ImatrixAction {
                    dataset: text_given.clone(),
                    ctx: *ctx,
                    chunks: *chunks,
                }),
                vec![
                    ("model".into(), model_input),
                    ("text".into(), Input::File(text.clone())),
                ],
                vec![name.clone()],
            );
            let file = format!("{name}.imatrix.gguf");
            p.materialize(
                node,
                IMATRIX_GGUF,
                PathBuf::from(name).join(&file),
                node,
                &group,
            );
            Some((
                Input::Output {
                    node,
                    output: IMATRIX_GGUF.into(),
                },
                ReleaseImatrix {
                    input: format!("imatrix/{name}"),
                    file,
                    computed: true,
                },
            ))
        }
    };

    let template = m.template.as_ref().map(modelfile_template);
    let quants: Vec<Option<&crate::manifest::QuantSpec>> = if m.quants.is_empty() {
        vec![None]
    } else {
        m.quants.iter().map(Some).collect()
    };
    for quant in quants {
        let qname = quant.map(|q| q.name.clone());
        let stem = artifact_stem(name, qname.as_deref());
        let suffix = qname.as_ref().map(|q| format!(":{q}")).unwrap_or_default();
        let mut groups = vec![name.clone()];
        if quant.is_some() {
            groups.push(format!("{name}{suffix}"));
        }
        let used_imatrix = quant.filter(|q| q.imatrix).and(imatrix.as_ref());
        let reuse_base = quant.is_some_and(|q| q.is_plain() && Some(q.ftype) == base_quant);
        let (gguf, report) = if let Some(q) = quant.filter(|_| !reuse_base) {
            let input = match &m.source {
                SourceSpec::Gguf(path) => Input::File(path.clone()),
                _ => Input::Output {
                    node: base.0,
                    output: base.1.clone(),
                },
            };
            let mut inputs = vec![("source".into(), input)];
            if let Some((im_input, _)) = used_imatrix {
                inputs.push(("imatrix".into(), im_input.clone()));
            }
            let node = p.add(
                format!("quantize:{name}{suffix}"),
                Box::new(QuantizeAction {
                    quant: q.ftype,
                    recipe: q.recipe.clone(),
                    imatrix_file: used_imatrix.map(|(_, im)| im.file.clone()),
                }),
                inputs,
                groups.clone(),
            );
            (
                (node, MODEL_GGUF.to_string()),
                Some((node, REPORT_JSON.to_string())),
            )
        } else {
            (base.clone(), None)
        };
        let gguf_input = Input::Output {
            node: gguf.0,
            output: gguf.1.clone(),
        };
        let modelfile = p.add(
            format!("modelfile:{name}{suffix}"),
            Box::new(ModelfileAction {
                gguf_file: format!("{stem}.gguf"),
                template: template.clone(),
            }),
            vec![("gguf".into(), gguf_input.clone())],
            groups.clone(),
        );
        let lint = p.add(
            format!("lint:{name}{suffix}"),
            Box::new(LintAction {
                allow: opts.allow_lint,
            }),
            vec![
                ("gguf".into(), gguf_input.clone()),
                (
                    "modelfile".into(),
                    Input::Output {
                        node: modelfile,
                        output: MODELFILE.into(),
                    },
                ),
            ],
            groups.clone(),
        );
        // Scored against the base GGUF, unless it is the base.
        let base_input = match &m.source {
            _ if gguf.0 == base.0 && gguf.1 == base.1 => None,
            SourceSpec::Gguf(path) => Some(Input::File(path.clone())),
            _ => Some(Input::Output {
                node: base.0,
                output: base.1.clone(),
            }),
        };
        let (eval_node, quality_node) = match eval {
            None => (None, None),
            Some(e) => {
                let mut inputs = vec![
                    ("model".to_string(), gguf_input.clone()),
                    ("text".to_string(), Input::File(e.text.clone())),
                ];
                inputs.extend(base_input.clone().map(|b| ("base".to_string(), b)));
                let node = p.add(
                    format!("eval:{name}{suffix}"),
                    Box::new(EvalAction {
                        text: e.text_given.clone(),
                        ctx: e.ctx,
                        chunks: e.chunks,
                        with_base: base_input.is_some(),
                    }),
                    inputs,
                    groups.clone(),
                );
                let budgets: Vec<QualityBudget> = m
                    .quality
                    .iter()
                    .filter(|b| Some(&b.quant) == qname.as_ref())
                    .map(|b| QualityBudget {
                        metric: b.metric.key().to_string(),
                        limit: b.limit,
                    })
                    .collect();
                let quality = (!budgets.is_empty()).then(|| {
                    p.add(
                        format!("quality:{name}{suffix}"),
                        Box::new(QualityAction {
                            model: name.clone(),
                            quant: qname.clone().unwrap_or_default(),
                            budgets,
                            allow: opts.allow_quality,
                        }),
                        vec![(
                            "eval".into(),
                            Input::Output {
                                node,
                                output: EVAL_JSON.into(),
                            },
                        )],
                        groups.clone(),
                    )
                });
                (Some(node), quality)
            }
        };
        let dir = PathBuf::from(name);
        p.materialize(
            gguf.0,
            &gguf.1,
            dir.join(format!("{stem}.gguf")),
            gguf.0,
            &group,
        );
        p.materialize(
            modelfile,
            MODELFILE,
            dir.join(format!("{stem}.Modelfile")),
            modelfile,
            &group,
        );
        artifacts.insert(
            (name.clone(), qname.clone()),
            Artifact {
                model: name.clone(),
                quant: qname,
                quant_type: quant.map(|q| q.ftype),
                imatrix: used_imatrix.cloned(),
                eval: eval_node,
                quality: quality_node,
                parity,
                gguf,
                modelfile,
                lint,
                report,
                sources: sources.clone(),
            },
        );
    }
    Ok(())
}

/// The `modelfile` action's template parameters from the manifest's resolved template.
fn modelfile_template(t: &TemplateSpec) -> ModelfileTemplate {
    ModelfileTemplate {
        name: t.name.clone(),
        family: t.family.clone(),
        template: t.template.clone(),
        system: t.system.clone(),
        parameters: t.parameters.clone(),
        license: t.license.clone(),
        messages: t.messages.clone(),
    }
}
