//! What a chat command answers, as data: text made of typed spans, blocks, buttons, forms, and
//! which field a refusal is about. Core words and decides; each platform's encoder turns this
//! into its own markup (Block Kit, Discord components) and escapes the spans that carry what
//! people typed. No adapter inspects the wording.

use crate::{Field, PersonId, RequestId};

/// A piece of text with its meaning, so every platform can render and escape it its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// Ordinary wording; may contain what someone typed, so encoders escape it.
    Plain(String),
    /// A name shown as code: a role, a scope, a command (`/elevate status`).
    Code(String),
    /// Emphasis.
    Strong(String),
    /// A person, shown as the platform's mention of their chat account when known.
    Person(PersonId),
    /// A channel id of the platform the answer goes to.
    Channel(String),
}

/// A line or paragraph of spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub Vec<Span>);

impl Text {
    pub fn new() -> Self {
        Text(Vec::new())
    }
    pub fn plain(s: impl Into<String>) -> Self {
        Text(vec![Span::Plain(s.into())])
    }
    pub fn push(mut self, span: Span) -> Self {
        self.0.push(span);
        self
    }
    pub fn and(self, s: impl Into<String>) -> Self {
        self.push(Span::Plain(s.into()))
    }
    pub fn code(self, s: impl Into<String>) -> Self {
        self.push(Span::Code(s.into()))
    }
    pub fn strong(self, s: impl Into<String>) -> Self {
        self.push(Span::Strong(s.into()))
    }
    /// Core's older wording marks names with backticks (`db`); this keeps them as code spans
    /// rather than letting the backticks be escaped into the text.
    pub fn from_marked(s: &str) -> Self {
        let mut out = Text::new();
        for (i, part) in s.split('`').enumerate() {
            if part.is_empty() {
                continue;
            }
            out = if i % 2 == 1 { out.code(part) } else { out.and(part) };
        }
        // An odd number of backticks: the last one was literal.
        if s.matches('`').count() % 2 == 1 {
            return Text::plain(s);
        }
        out
    }
    /// The text with no markup at all, for logs, fallbacks and notifications.
    pub fn to_plain(&self) -> String {
        self.0
            .iter()
            .map(|s| match s {
                Span::Plain(t) | Span::Code(t) | Span::Strong(t) => t.clone(),
                Span::Person(p) => p.to_string(),
                Span::Channel(c) => format!("#{c}"),
            })
            .collect()
    }
}

/// How an answer should feel; each platform picks its own icon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Info,
    /// A refusal or a problem the person can fix.
    Warning,
    /// Break-glass and other alarms.
    Alarm,
    /// A lockdown report.
    Locked,
}

/// One block of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A title line, shown prominently.
    Heading(Text),
    Text(Text),
    /// One line per item.
    List(Vec<Text>),
    /// Labelled values shown side by side where the platform can.
    Fields(Vec<(String, Text)>),
    /// Small print under the rest.
    Context(Text),
    Buttons(Vec<Button>),
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub tone: Tone,
    pub blocks: Vec<Block>,
}

impl Message {
    pub fn text(tone: Tone, text: Text) -> Self {
        Message { tone, blocks: vec![Block::Text(text)] }
    }
    pub fn with(mut self, block: Block) -> Self {
        self.blocks.push(block);
        self
    }
    /// All text without markup, for the platform's notification fallback.
    pub fn to_plain(&self) -> String {
        let mut lines = Vec::new();
        for b in &self.blocks {
            match b {
                Block::Heading(t) | Block::Text(t) | Block::Context(t) => lines.push(t.to_plain()),
                Block::List(items) => lines.extend(items.iter().map(|t| format!("• {}", t.to_plain()))),
                Block::Fields(f) => lines.extend(f.iter().map(|(k, v)| format!("{k}: {}", v.to_plain()))),
                Block::Buttons(_) => {}
            }
        }
        lines.join("\n")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The go-ahead (Approve): green where the platform has it.
    Success,
    Primary,
    Danger,
    Plain,
}

/// What pressing a button asks for. Encoded into the platform's button value / custom id, and
/// decoded back into a [`super::Command`] when the click arrives; authority is checked then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Opens the request form.
    RequestForm,
    Approve(RequestId),
    /// Opens the deny form.
    Deny(RequestId),
    /// Opens the extend form.
    Extend(RequestId),
    Release(RequestId),
    Cancel(RequestId),
    /// Confirmed: lock down `scope` for `reason`.
    Lockdown {
        scope: String,
        reason: String,
    },
    /// Confirmed: revoke the grant for `reason`.
    Revoke {
        id: RequestId,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub label: String,
    pub action: Action,
    pub style: Style,
    /// A question the platform asks before the click counts, for destructive actions.
    pub confirm: Option<Text>,
}

impl Button {
    pub fn new(label: &str, action: Action, style: Style) -> Self {
        Button { label: label.into(), action, style, confirm: None }
    }
}

/// Which form, and so what its submission means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormKind {
    Request,
    Deny(RequestId),
    Extend(RequestId),
    /// Submitting it, with the reason typed, is the confirmation.
    Lockdown {
        scope: String,
    },
    Revoke(RequestId),
}

/// One input of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub field: Field,
    pub label: String,
    pub placeholder: String,
    pub required: bool,
    pub multiline: bool,
    /// Filled in already (a confirmation form carrying what was typed in the command).
    pub value: Option<String>,
    /// A choice among `(label, value)` instead of free text.
    pub choices: Option<Vec<(String, String)>>,
    /// Several of the choices may be picked; the submission joins their values with commas
    /// (the form of roles typed as `db,logs`).
    pub several: bool,
}

impl Input {
    pub fn text(field: Field, label: &str, placeholder: &str, required: bool) -> Self {
        Input {
            field,
            label: label.into(),
            placeholder: placeholder.into(),
            required,
            multiline: false,
            value: None,
            choices: None,
            several: false,
        }
    }
    pub fn multiline(mut self) -> Self {
        self.multiline = true;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub kind: FormKind,
    pub title: String,
    pub submit: String,
    pub inputs: Vec<Input>,
}

/// A refusal: what the person is told, and which input it is about (so a form shows it there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub text: Text,
    pub field: Option<Field>,
}

/// The whole answer to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A message only the person sees.
    Private(Message),
    /// Open this form.
    Form(Form),
    Refused(Refusal),
    /// Nothing to say: the approval card updates itself from the audit log.
    Nothing,
}

impl Answer {
    pub fn say(tone: Tone, text: Text) -> Self {
        Answer::Private(Message::text(tone, text))
    }
    /// A refusal with no particular field.
    pub fn refuse(text: Text) -> Self {
        Answer::Refused(Refusal { text, field: None })
    }
}
