//! How diagnostics look: `warning: <action>: message` lines for humans (not tracing's
//! `WARN span{field=…}:` syntax), coloured only when wanted.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// `--color`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal, unless `NO_COLOR` is set (`CLICOLOR_FORCE` forces it).
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Whether diagnostics on stderr get colours: `--color`, else `NO_COLOR` (no-color.org)
    /// turns them off, `CLICOLOR_FORCE` on, else only on a terminal.
    pub fn enabled(self) -> bool {
        let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty() && s != "0");
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto if set("NO_COLOR") => false,
            ColorChoice::Auto if set("CLICOLOR_FORCE") => true,
            ColorChoice::Auto => std::io::stderr().is_terminal(),
        }
    }
}

/// `label` (`error`, `warning`, …) in its colour when `ansi`.
pub fn paint(label: &str, ansi: bool) -> String {
    if !ansi {
        return label.to_string();
    }
    let code = match label {
        "error" => "1;31",
        "warning" => "1;33",
        "info" => "1;32",
        "debug" => "1;34",
        _ => "1;35",
    };
    format!("\x1b[{code}m{label}\x1b[0m")
}

/// `warning: gguf:tiny: message key=value`: the level as a word, then the action the event
/// comes from (the innermost `action` span), then the message and any other fields.
pub struct HumanFormat {
    /// Colour the level.
    pub ansi: bool,
}

impl<S, N> FormatEvent<S, N> for HumanFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let label = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        write!(writer, "{}: ", paint(label, self.ansi))?;
        if let Some(scope) = ctx.event_scope() {
            let mut action = None;
            for span in scope.from_root() {
                if span.name() == "action"
                    && let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                {
                    let text = fields.fields.as_str();
                    action = Some(text.strip_prefix("id=").unwrap_or(text).to_string());
                }
            }
            if let Some(a) = action {
                write!(writer, "{a}: ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
