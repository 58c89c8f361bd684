//! Headers-exchange routing: matching a message's headers table against a binding's arguments.
//!
//! Responsibilities:
//! - [`headers_match`] decides whether one binding takes a message, exactly as RabbitMQ's
//!   `rabbit_exchange_type_headers` does, so bindings made against RabbitMQ route identically.
//! - [`validate_binding_args`] rejects an unusable `x-match` when the binding is made, with
//!   RabbitMQ's wording, so the client gets 406 PRECONDITION_FAILED instead of silent misrouting.
//!
//! RabbitMQ semantics kept here:
//! - `x-match` is `all` (the default), `any`, `all-with-x` or `any-with-x`. An `x-match` that is
//!   present but unrecognised (only possible for bindings that bypassed validation, e.g. imported
//!   definitions) means `all`, as RabbitMQ's legacy fallback does.
//! - The `x-match` argument itself never takes part in matching. Other arguments whose key starts
//!   with `x-` are ignored by `all`/`any` and are matched like any other by the `-with-x` kinds.
//! - `all` is true when every remaining argument matches, so with none left it matches every
//!   message (headers or not); `any` needs at least one matching argument, so with none it matches
//!   nothing.
//! - An argument of type void matches when the header is present, whatever its value.
//! - Otherwise a header matches when its value equals the argument's value the way Erlang's `==`
//!   compares the decoded terms: the field *type* of a top-level value is not compared. So integers
//!   of any width (and timestamps) are equal when numerically equal, an integer equals a float of
//!   the same exact value, and long strings, short strings and byte arrays are equal when their
//!   bytes are. Arrays and nested tables keep their element types in Erlang, so they compare
//!   exactly.

use amq_protocol::types::{AMQPValue, FieldTable};

/// The argument that selects the match kind; RabbitMQ always leaves it out of the matching itself.
const X_MATCH: &str = "x-match";

/// How the binding's arguments combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchKind {
    /// Every argument must match; `x-` arguments are skipped.
    All,
    /// At least one argument must match; `x-` arguments are skipped.
    Any,
    /// As `All`, but `x-` arguments (other than `x-match`) take part.
    AllWithX,
    /// As `Any`, but `x-` arguments (other than `x-match`) take part.
    AnyWithX,
}

impl MatchKind {
    /// Parses a recognised `x-match` value; `None` for anything else.
    fn parse(value: &AMQPValue) -> Option<Self> {
        let bytes = string_bytes(value)?;
        match bytes {
            b"all" => Some(Self::All),
            b"any" => Some(Self::Any),
            b"all-with-x" => Some(Self::AllWithX),
            b"any-with-x" => Some(Self::AnyWithX),
            _ => None,
        }
    }

    /// The kind a binding uses; absent or unrecognised `x-match` means `all`, like RabbitMQ.
    fn of(binding_args: &FieldTable) -> Self {
        binding_args
            .inner()
            .get(X_MATCH)
            .and_then(Self::parse)
            .unwrap_or(Self::All)
    }

    fn includes_x_args(self) -> bool {
        matches!(self, Self::AllWithX | Self::AnyWithX)
    }

    fn is_any(self) -> bool {
        matches!(self, Self::Any | Self::AnyWithX)
    }
}

/// The bytes of a long string; short strings are accepted too since Warren itself may build them,
/// although amq-protocol never decodes one from the wire (RabbitMQ reads `s` as a short int).
fn string_bytes(value: &AMQPValue) -> Option<&[u8]> {
    match value {
        AMQPValue::LongString(s) => Some(s.as_bytes()),
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes()),
        _ => None,
    }
}

/// A decoded value as Erlang sees it for `==`: top-level field types collapse into these.
enum Term<'a> {
    Int(i128),
    Float(f64),
    Bytes(&'a [u8]),
    /// Booleans, decimals, arrays, tables and void: compared exactly, type included.
    Other(&'a AMQPValue),
}

fn term(value: &AMQPValue) -> Term<'_> {
    match value {
        AMQPValue::ShortShortInt(v) => Term::Int(i128::from(*v)),
        AMQPValue::ShortShortUInt(v) => Term::Int(i128::from(*v)),
        AMQPValue::ShortInt(v) => Term::Int(i128::from(*v)),
        AMQPValue::ShortUInt(v) => Term::Int(i128::from(*v)),
        AMQPValue::LongInt(v) => Term::Int(i128::from(*v)),
        AMQPValue::LongUInt(v) => Term::Int(i128::from(*v)),
        AMQPValue::LongLongInt(v) => Term::Int(i128::from(*v)),
        AMQPValue::Timestamp(v) => Term::Int(i128::from(*v)),
        AMQPValue::Float(v) => Term::Float(f64::from(*v)),
        AMQPValue::Double(v) => Term::Float(*v),
        AMQPValue::LongString(s) => Term::Bytes(s.as_bytes()),
        AMQPValue::ShortString(s) => Term::Bytes(s.as_str().as_bytes()),
        AMQPValue::ByteArray(b) => Term::Bytes(b.as_slice()),
        other => Term::Other(other),
    }
}

/// Whether an integer and a float denote exactly the same number, as Erlang's `==` decides.
fn int_eq_float(i: i128, f: f64) -> bool {
    // `as` saturates out of range, and no u64/i64 value sits at i128's bounds, so a float too
    // large to be any header integer can never compare equal by accident.
    f.is_finite() && f.fract() == 0.0 && f as i128 == i
}

/// Equality of a binding argument and a header value, per the module's rules.
fn values_equal(pattern: &AMQPValue, header: &AMQPValue) -> bool {
    match (term(pattern), term(header)) {
        (Term::Int(a), Term::Int(b)) => a == b,
        (Term::Float(a), Term::Float(b)) => a == b,
        (Term::Int(i), Term::Float(f)) | (Term::Float(f), Term::Int(i)) => int_eq_float(i, f),
        (Term::Bytes(a), Term::Bytes(b)) => a == b,
        (Term::Other(a), Term::Other(b)) => a == b,
        _ => false,
    }
}

/// Whether the binding with arguments `binding_args` takes a message whose headers table is
/// `message_headers` (`None` when the message has no headers property, which matches like an
/// empty table). Implements RabbitMQ's headers exchange, see the module docs.
#[must_use]
pub fn headers_match(binding_args: &FieldTable, message_headers: Option<&FieldTable>) -> bool {
    let kind = MatchKind::of(binding_args);
    let include_x = kind.includes_x_args();
    let mut relevant = binding_args.inner().iter().filter(|(key, _)| {
        let key = key.as_str();
        key != X_MATCH && (include_x || !key.starts_with("x-"))
    });
    let arg_matches = |(key, expected): (_, &AMQPValue)| {
        let Some(actual) = message_headers.and_then(|h| h.inner().get(key)) else {
            return false;
        };
        matches!(expected, AMQPValue::Void) || values_equal(expected, actual)
    };
    if kind.is_any() {
        relevant.any(arg_matches)
    } else {
        relevant.all(arg_matches)
    }
}

/// Checks a headers binding's arguments when it is made, so an unusable `x-match` is refused up
/// front. `Err` carries RabbitMQ's reply text, for the caller to send as 406 PRECONDITION_FAILED.
/// A missing `x-match` is fine (it means `all`).
///
/// # Errors
///
/// An `x-match` that is a string other than the four kinds, or not a string at all.
pub fn validate_binding_args(args: &FieldTable) -> Result<(), String> {
    let Some(value) = args.inner().get(X_MATCH) else {
        return Ok(());
    };
    if MatchKind::parse(value).is_some() {
        return Ok(());
    }
    match string_bytes(value) {
        Some(bytes) => Err(format!(
            "Invalid x-match field value {}; expected all, any, all-with-x, or any-with-x",
            erlang_binary(bytes)
        )),
        None => Err(format!(
            "Invalid x-match field type {} (value {}); expected longstr",
            rabbit_type_name(value),
            erlang_value(value)
        )),
    }
}

/// Renders bytes the way RabbitMQ's `~tp` prints a binary, so reply texts read the same.
fn erlang_binary(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    format!("<<{:?}>>", text.as_ref())
}

/// Renders a non-string value for an error message, close to how RabbitMQ prints the term.
fn erlang_value(value: &AMQPValue) -> String {
    match term(value) {
        Term::Int(i) => i.to_string(),
        Term::Float(f) => f.to_string(),
        Term::Bytes(b) => erlang_binary(b),
        Term::Other(AMQPValue::Boolean(b)) => b.to_string(),
        Term::Other(AMQPValue::Void) => "undefined".to_owned(),
        Term::Other(other) => format!("{other:?}"),
    }
}

/// The type name RabbitMQ uses for a field value in its messages.
fn rabbit_type_name(value: &AMQPValue) -> &'static str {
    match value {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) => "shortstr",
        AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{ByteArray, DecimalValue, FieldArray, LongString, ShortString};
    use proptest::prelude::*;

    fn ls(s: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(s))
    }

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert(ShortString::from(*k), v.clone());
        }
        t
    }

    fn binding(kind: Option<&str>, entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = table(entries);
        if let Some(kind) = kind {
            t.insert(ShortString::from(X_MATCH), ls(kind));
        }
        t
    }

    #[test]
    fn all_is_the_default_and_needs_every_argument() {
        for kind in [None, Some("all")] {
            let b = binding(kind, &[("format", ls("pdf")), ("type", ls("report"))]);
            let both = table(&[
                ("format", ls("pdf")),
                ("type", ls("report")),
                ("extra", ls("x")),
            ]);
            assert!(headers_match(&b, Some(&both)));
            assert!(!headers_match(&b, Some(&table(&[("format", ls("pdf"))]))));
            assert!(!headers_match(
                &b,
                Some(&table(&[("format", ls("pdf")), ("type", ls("log"))]))
            ));
            assert!(!headers_match(&b, None));
            assert!(!headers_match(&b, Some(&FieldTable::default())));
        }
    }

    #[test]
    fn any_needs_one_argument() {
        let b = binding(
            Some("any"),
            &[("format", ls("pdf")), ("type", ls("report"))],
        );
        assert!(headers_match(&b, Some(&table(&[("type", ls("report"))]))));
        assert!(headers_match(
            &b,
            Some(&table(&[("format", ls("pdf")), ("type", ls("log"))]))
        ));
        assert!(!headers_match(
            &b,
            Some(&table(&[("format", ls("zip")), ("type", ls("log"))]))
        ));
        assert!(!headers_match(&b, None));
    }

    #[test]
    fn no_arguments_all_matches_everything_any_matches_nothing() {
        let msg = table(&[("a", ls("1"))]);
        for kind in [None, Some("all"), Some("all-with-x")] {
            let b = binding(kind, &[]);
            assert!(headers_match(&b, None), "{kind:?}");
            assert!(headers_match(&b, Some(&msg)), "{kind:?}");
        }
        for kind in ["any", "any-with-x"] {
            let b = binding(Some(kind), &[]);
            assert!(!headers_match(&b, None), "{kind}");
            assert!(!headers_match(&b, Some(&msg)), "{kind}");
        }
        // Only x- arguments: they are skipped by all/any, leaving no arguments.
        let all = binding(Some("all"), &[("x-foo", ls("1"))]);
        let any = binding(Some("any"), &[("x-foo", ls("1"))]);
        assert!(headers_match(&all, None));
        assert!(!headers_match(&any, Some(&table(&[("x-foo", ls("1"))]))));
    }

    #[test]
    fn x_arguments_only_count_with_x() {
        let args = [("x-tenant", ls("acme")), ("kind", ls("order"))];
        let msg_without_x = table(&[("kind", ls("order"))]);
        let msg_with_x = table(&[("kind", ls("order")), ("x-tenant", ls("acme"))]);
        let msg_wrong_x = table(&[("kind", ls("order")), ("x-tenant", ls("other"))]);

        let all = binding(Some("all"), &args);
        assert!(headers_match(&all, Some(&msg_without_x)));
        assert!(headers_match(&all, Some(&msg_wrong_x)));

        let all_x = binding(Some("all-with-x"), &args);
        assert!(!headers_match(&all_x, Some(&msg_without_x)));
        assert!(headers_match(&all_x, Some(&msg_with_x)));
        assert!(!headers_match(&all_x, Some(&msg_wrong_x)));

        let any = binding(Some("any"), &[("x-tenant", ls("acme")), ("k", ls("v"))]);
        assert!(!headers_match(&any, Some(&msg_with_x)));
        let any_x = binding(
            Some("any-with-x"),
            &[("x-tenant", ls("acme")), ("k", ls("v"))],
        );
        assert!(headers_match(&any_x, Some(&msg_with_x)));
        assert!(!headers_match(&any_x, Some(&msg_wrong_x)));
    }

    #[test]
    fn x_match_itself_never_takes_part() {
        // With all-with-x the message need not carry an x-match header of its own.
        let b = binding(Some("all-with-x"), &[("k", ls("v"))]);
        assert!(headers_match(&b, Some(&table(&[("k", ls("v"))]))));
        // And any-with-x is not satisfied by a message echoing the x-match value.
        let b = binding(Some("any-with-x"), &[("k", ls("v"))]);
        assert!(!headers_match(
            &b,
            Some(&table(&[("x-match", ls("any-with-x"))]))
        ));
    }

    #[test]
    fn void_argument_matches_presence() {
        let b = binding(None, &[("flag", AMQPValue::Void)]);
        assert!(headers_match(&b, Some(&table(&[("flag", ls("anything"))]))));
        assert!(headers_match(
            &b,
            Some(&table(&[("flag", AMQPValue::LongLongInt(3))]))
        ));
        assert!(headers_match(
            &b,
            Some(&table(&[("flag", AMQPValue::Void)]))
        ));
        assert!(!headers_match(
            &b,
            Some(&table(&[("other", AMQPValue::Void)]))
        ));
        assert!(!headers_match(&b, None));
        // A void header does not equal a non-void argument.
        let b = binding(None, &[("flag", ls(""))]);
        assert!(!headers_match(
            &b,
            Some(&table(&[("flag", AMQPValue::Void)]))
        ));
    }

    #[test]
    fn numbers_compare_by_value_across_widths() {
        let b = binding(None, &[("n", AMQPValue::LongInt(42))]);
        for v in [
            AMQPValue::ShortShortInt(42),
            AMQPValue::ShortShortUInt(42),
            AMQPValue::ShortInt(42),
            AMQPValue::ShortUInt(42),
            AMQPValue::LongInt(42),
            AMQPValue::LongUInt(42),
            AMQPValue::LongLongInt(42),
            AMQPValue::Timestamp(42),
            AMQPValue::Float(42.0),
            AMQPValue::Double(42.0),
        ] {
            assert!(
                headers_match(&b, Some(&table(&[("n", v.clone())]))),
                "{v:?}"
            );
        }
        for v in [
            AMQPValue::LongLongInt(-42),
            AMQPValue::Double(42.5),
            AMQPValue::Double(f64::NAN),
            AMQPValue::Double(f64::INFINITY),
            ls("42"),
            AMQPValue::Boolean(true),
            AMQPValue::DecimalValue(DecimalValue {
                scale: 0,
                value: 42,
            }),
        ] {
            assert!(
                !headers_match(&b, Some(&table(&[("n", v.clone())]))),
                "{v:?}"
            );
        }
        let big = binding(None, &[("n", AMQPValue::Timestamp(u64::MAX))]);
        assert!(!headers_match(
            &big,
            Some(&table(&[("n", AMQPValue::LongLongInt(-1))]))
        ));
        assert!(!headers_match(
            &big,
            Some(&table(&[("n", AMQPValue::Double(1e300))]))
        ));
        let float = binding(None, &[("f", AMQPValue::Float(0.5))]);
        assert!(headers_match(
            &float,
            Some(&table(&[("f", AMQPValue::Double(0.5))]))
        ));
    }

    #[test]
    fn strings_compare_by_bytes_across_string_types() {
        let b = binding(None, &[("s", ls("abc"))]);
        for v in [
            ls("abc"),
            AMQPValue::ShortString(ShortString::from("abc")),
            AMQPValue::ByteArray(ByteArray::from(b"abc".as_slice())),
        ] {
            assert!(
                headers_match(&b, Some(&table(&[("s", v.clone())]))),
                "{v:?}"
            );
        }
        assert!(!headers_match(&b, Some(&table(&[("s", ls("abcd"))]))));
        assert!(!headers_match(&b, Some(&table(&[("s", ls("ABC"))]))));
    }

    #[test]
    fn booleans_and_nested_values_compare_exactly() {
        let b = binding(None, &[("t", AMQPValue::Boolean(true))]);
        assert!(headers_match(
            &b,
            Some(&table(&[("t", AMQPValue::Boolean(true))]))
        ));
        assert!(!headers_match(
            &b,
            Some(&table(&[("t", AMQPValue::Boolean(false))]))
        ));
        assert!(!headers_match(
            &b,
            Some(&table(&[("t", AMQPValue::ShortShortUInt(1))]))
        ));

        let arr = |v: AMQPValue| AMQPValue::FieldArray(FieldArray::from(vec![v]));
        let b = binding(None, &[("a", arr(AMQPValue::LongInt(1)))]);
        assert!(headers_match(
            &b,
            Some(&table(&[("a", arr(AMQPValue::LongInt(1)))]))
        ));
        // Inside arrays Erlang keeps the element type, so widths must agree.
        assert!(!headers_match(
            &b,
            Some(&table(&[("a", arr(AMQPValue::LongLongInt(1)))]))
        ));

        let inner = AMQPValue::FieldTable(table(&[("k", ls("v"))]));
        let b = binding(None, &[("t", inner.clone())]);
        assert!(headers_match(&b, Some(&table(&[("t", inner)]))));
        assert!(!headers_match(
            &b,
            Some(&table(&[(
                "t",
                AMQPValue::FieldTable(table(&[("k", ls("w"))]))
            )]))
        ));
    }

    #[test]
    fn unrecognised_x_match_falls_back_to_all() {
        let mut b = table(&[("a", ls("1")), ("b", ls("2"))]);
        b.insert(ShortString::from(X_MATCH), ls("some"));
        let one = table(&[("a", ls("1"))]);
        let both = table(&[("a", ls("1")), ("b", ls("2"))]);
        assert!(!headers_match(&b, Some(&one)));
        assert!(headers_match(&b, Some(&both)));
        b.insert(ShortString::from(X_MATCH), AMQPValue::LongInt(1));
        assert!(!headers_match(&b, Some(&one)));
        assert!(headers_match(&b, Some(&both)));
        // Matching is case-sensitive, as in RabbitMQ: "ANY" is not "any".
        b.insert(ShortString::from(X_MATCH), ls("ANY"));
        assert!(!headers_match(&b, Some(&one)));
    }

    #[test]
    fn short_string_x_match_is_understood() {
        let mut b = table(&[("a", ls("1")), ("b", ls("2"))]);
        b.insert(
            ShortString::from(X_MATCH),
            AMQPValue::ShortString(ShortString::from("any")),
        );
        assert!(headers_match(&b, Some(&table(&[("a", ls("1"))]))));
        assert_eq!(validate_binding_args(&b), Ok(()));
    }

    #[test]
    fn validation_accepts_known_kinds_and_absence() {
        assert_eq!(validate_binding_args(&FieldTable::default()), Ok(()));
        assert_eq!(
            validate_binding_args(&table(&[("other", AMQPValue::LongInt(1))])),
            Ok(())
        );
        for kind in ["all", "any", "all-with-x", "any-with-x"] {
            assert_eq!(validate_binding_args(&binding(Some(kind), &[])), Ok(()));
        }
    }

    #[test]
    fn validation_rejects_with_rabbitmq_wording() {
        assert_eq!(
            validate_binding_args(&binding(Some("some"), &[])),
            Err("Invalid x-match field value <<\"some\">>; expected all, any, all-with-x, or any-with-x".to_owned())
        );
        assert_eq!(
            validate_binding_args(&binding(Some("All"), &[]))
                .map_err(|e| e.contains("<<\"All\">>")),
            Err(true)
        );
        assert_eq!(
            validate_binding_args(&table(&[(X_MATCH, AMQPValue::LongInt(1))])),
            Err("Invalid x-match field type signedint (value 1); expected longstr".to_owned())
        );
        assert_eq!(
            validate_binding_args(&table(&[(X_MATCH, AMQPValue::Boolean(true))])),
            Err("Invalid x-match field type bool (value true); expected longstr".to_owned())
        );
        assert_eq!(
            validate_binding_args(&table(&[(X_MATCH, AMQPValue::Void)])),
            Err("Invalid x-match field type void (value undefined); expected longstr".to_owned())
        );
        // A byte array is a binary in RabbitMQ, not a longstr.
        assert!(
            validate_binding_args(&table(&[(
                X_MATCH,
                AMQPValue::ByteArray(ByteArray::from(b"all".as_slice()))
            )]))
            .is_err_and(|e| e.starts_with("Invalid x-match field type binary"))
        );
    }

    // --- Property test against a transcription of RabbitMQ's merge algorithm -------------------

    /// RabbitMQ's `headers_match/5`, clause by clause, over key-sorted lists. Values use the same
    /// equality as the module, so this checks the key/kind logic independently of the lookup code.
    fn rabbit_merge(
        pattern: &[(String, AMQPValue)],
        data: &[(String, AMQPValue)],
        all_match: bool,
        any_match: bool,
        kind: MatchKind,
    ) -> bool {
        use MatchKind::*;
        if !all_match && matches!(kind, All | AllWithX) {
            return false;
        }
        if any_match && matches!(kind, Any | AnyWithX) {
            return true;
        }
        let Some(((pk, pv), prest)) = pattern.split_first() else {
            return if matches!(kind, All | AllWithX) {
                all_match
            } else {
                any_match
            };
        };
        if pk == X_MATCH {
            return rabbit_merge(prest, data, all_match, any_match, kind);
        }
        if pk.starts_with("x-") && !matches!(kind, AllWithX | AnyWithX) {
            return rabbit_merge(prest, data, all_match, any_match, kind);
        }
        let Some(((dk, dv), drest)) = data.split_first() else {
            return rabbit_merge(&[], &[], false, any_match, kind);
        };
        if pk > dk {
            return rabbit_merge(pattern, drest, all_match, any_match, kind);
        }
        if pk < dk {
            return rabbit_merge(prest, data, false, any_match, kind);
        }
        if matches!(pv, AMQPValue::Void) || values_equal(pv, dv) {
            return rabbit_merge(prest, drest, all_match, true, kind);
        }
        rabbit_merge(prest, drest, false, any_match, kind)
    }

    fn sorted_list(t: &FieldTable) -> Vec<(String, AMQPValue)> {
        // BTreeMap iteration is already sorted by key bytes, as RabbitMQ's keysort is.
        t.inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
            .collect()
    }

    fn small_value() -> impl Strategy<Value = AMQPValue> {
        prop_oneof![
            Just(AMQPValue::Void),
            (0i32..3).prop_map(AMQPValue::LongInt),
            (0i64..3).prop_map(AMQPValue::LongLongInt),
            prop::sample::select(vec!["0", "1", "x"]).prop_map(ls),
            any::<bool>().prop_map(AMQPValue::Boolean),
        ]
    }

    fn small_table() -> impl Strategy<Value = FieldTable> {
        let key = prop::sample::select(vec!["a", "b", "c", "x-a", "x-b", "x-match"]);
        prop::collection::vec((key, small_value()), 0..6).prop_map(|entries| {
            let mut t = FieldTable::default();
            for (k, v) in entries {
                t.insert(ShortString::from(k), v);
            }
            t
        })
    }

    fn x_match_value() -> impl Strategy<Value = Option<AMQPValue>> {
        prop_oneof![
            Just(None),
            prop::sample::select(vec!["all", "any", "all-with-x", "any-with-x", "bogus"])
                .prop_map(|s| Some(ls(s))),
            Just(Some(AMQPValue::LongInt(0))),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_rabbitmq_merge(
            mut args in small_table(),
            x_match in x_match_value(),
            headers in proptest::option::of(small_table()),
        ) {
            if let Some(x) = x_match {
                args.insert(ShortString::from(X_MATCH), x);
            }
            let kind = MatchKind::of(&args);
            let data = headers.as_ref().map(sorted_list).unwrap_or_default();
            let expected = rabbit_merge(&sorted_list(&args), &data, true, false, kind);
            prop_assert_eq!(headers_match(&args, headers.as_ref()), expected);
        }

        #[test]
        fn validation_never_panics(args in small_table(), raw in any::<Vec<u8>>()) {
            let _ = validate_binding_args(&args);
            let mut args = args;
            args.insert(ShortString::from(X_MATCH), AMQPValue::LongString(LongString::from(raw)));
            let _ = validate_binding_args(&args);
        }
    }
}
