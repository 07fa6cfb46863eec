//! Metric label values that come from the domain enums themselves.

/// A domain enum whose values are the values of one metric label: all of them in a fixed
/// order, and each value's place in it. Metric handles are registered once per value in that
/// order (`smsroute_metrics::LabelCounters`), so a metric's labels come from the enum that
/// defines them, never from a list kept in another crate.
///
/// ```
/// use smsroute_types::Label;
///
/// enum Light { Red, Green }
/// impl Label for Light {
///     const LABELS: &'static [&'static str] = &["red", "green"];
///     fn index(&self) -> usize {
///         match self { Light::Red => 0, Light::Green => 1 }
///     }
/// }
/// assert_eq!(Light::Green.label(), "green");
/// ```
pub trait Label {
    /// Every label value, in order.
    const LABELS: &'static [&'static str];
    /// This value's place in [`Label::LABELS`].
    fn index(&self) -> usize;
    /// This value's label.
    fn label(&self) -> &'static str {
        Self::LABELS[self.index()]
    }
}
