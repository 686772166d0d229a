//! What the fake knows of the Bot API's shapes, over the generated table in `spec.rs`:
//! finding a method or a type by name, making a plausible value of a type, and completing
//! a result so that it carries every field its type requires. Methods the fake does not
//! model answer through these, so a client library that checks required fields (as the
//! Python ones do) accepts every answer.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use super::spec::{METHODS, TYPES};

/// One Bot API method: its return type expression and its required parameters.
pub(crate) struct Method {
    pub(crate) name: &'static str,
    /// `Message`, `True`, `Array of Update`, `Message or True`, ...
    pub(crate) returns: &'static str,
    pub(crate) required: &'static [&'static str],
    /// For sends: the `Message` field that carries what was sent, and its type.
    pub(crate) content: Option<(&'static str, &'static str)>,
}

/// One type with only its required fields; an abstract type has no fields and lists
/// the types it can be instead.
pub(crate) struct Type {
    pub(crate) name: &'static str,
    pub(crate) fields: &'static [Field],
    pub(crate) variants: &'static [&'static str],
}

pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) ty: &'static str,
    pub(crate) lit: Lit,
}

/// A string field's known value.
pub(crate) enum Lit {
    None,
    /// "always 'creator'": tells the forms of a union apart.
    Always(&'static str),
    /// "can be 'private', 'group', ...": the first one, as a plausible value.
    Sample(&'static str),
}

/// Required fields nest a few levels at most; the bound only guards against a table
/// that would recurse.
const MAX_DEPTH: usize = 12;

fn cmp_ignore_case(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// A method by name, ignoring case as Telegram does.
pub(crate) fn method(name: &str) -> Option<&'static Method> {
    METHODS
        .binary_search_by(|m| cmp_ignore_case(m.name, name))
        .ok()
        .map(|at| &METHODS[at])
}

pub(crate) fn find_type(name: &str) -> Option<&'static Type> {
    TYPES
        .binary_search_by(|t| t.name.cmp(name))
        .ok()
        .map(|at| &TYPES[at])
}

/// Every method name, for the control API's index.
pub(crate) fn method_count() -> usize {
    METHODS.len()
}

/// What a plausible value may borrow from the call: parameters of the same name as a
/// field (a forum topic's `name`, a contact's `phone_number`) and the time.
pub(crate) struct Hints<'a> {
    pub params: &'a Map<String, Value>,
    pub(crate) now: i64,
}

fn fits(ty: &str, value: &Value) -> bool {
    match ty {
        "Integer" => value.is_i64(),
        "Float" => value.is_number(),
        "String" => value.is_string(),
        "Boolean" => value.is_boolean(),
        _ => false,
    }
}

fn plausible_integer(name: &str, now: i64) -> i64 {
    match name {
        "width" => 640,
        "height" => 480,
        "length" => 240,
        "duration" => 1,
        "max_reaction_count" => 11,
        _ if name.ends_with("date") => now,
        _ if name == "id" || name.ends_with("_id") => 1,
        _ => 0,
    }
}

fn plausible_string(name: &str) -> String {
    match name {
        "file_id" => "fake-file-id".to_owned(),
        "file_unique_id" => "fakeuniqueid".to_owned(),
        "currency" => "XTR".to_owned(),
        "emoji" => "\u{1F3B2}".to_owned(),
        _ if name.ends_with("link") || name.ends_with("url") => "https://t.me/fake".to_owned(),
        _ => format!("fake_{name}"),
    }
}

/// A plausible value of the type expression `ty` for a field called `name`. Arrays
/// are empty; unions take their first form; objects get every required field. At
/// depth 0, a field whose name is also a parameter of the call echoes it.
pub(crate) fn plausible(ty: &str, name: &str, hints: &Hints<'_>, depth: usize) -> Value {
    if let Some((first, _)) = ty.split_once(" or ") {
        return plausible(first, name, hints, depth);
    }
    if ty.starts_with("Array of ") {
        return json!([]);
    }
    match ty {
        "Integer" => return json!(plausible_integer(name, hints.now)),
        "Float" => return json!(0.0),
        "String" => return json!(plausible_string(name)),
        "Boolean" => return json!(false),
        "True" => return json!(true),
        _ => {}
    }
    let Some(found) = find_type(ty) else {
        return json!({});
    };
    if depth > MAX_DEPTH {
        return json!({});
    }
    if found.fields.is_empty() {
        return match found.variants.first() {
            Some(first) => plausible(first, name, hints, depth + 1),
            None => json!({}),
        };
    }
    let mut object = Map::new();
    for field in found.fields {
        let echoed = (depth == 0)
            .then(|| hints.params.get(field.name))
            .flatten()
            .filter(|value| fits(field.ty, value));
        let value = match (echoed, &field.lit) {
            (_, Lit::Always(constant)) => json!(constant),
            (Some(value), _) => value.clone(),
            (None, Lit::Sample(sample)) => json!(sample),
            (None, Lit::None) => plausible(field.ty, field.name, hints, depth + 1),
        };
        object.insert(field.name.to_owned(), value);
    }
    Value::Object(object)
}

/// The form of the abstract type `found` that `value` is: the first whose fixed
/// fields (`"status": "administrator"`) all match, else the first form.
fn variant_of(found: &Type, value: &Value) -> Option<&'static str> {
    let matches = |name: &&'static str| {
        find_type(name).is_some_and(|form| {
            form.fields.iter().all(|field| match field.lit {
                Lit::Always(constant) => value.get(field.name) == Some(&json!(constant)),
                _ => true,
            })
        })
    };
    found
        .variants
        .iter()
        .copied()
        .find(matches)
        .or(found.variants.first().copied())
}

/// Adds to `value` every required field of `ty` it lacks, recursing into the required
/// fields it has; never changes a field that is there.
pub(crate) fn complete(ty: &str, value: &mut Value, hints: &Hints<'_>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    if ty.contains(" or ") {
        // `Message or True`: only an object can lack anything.
        if value.is_object()
            && let Some(object_type) = ty.split(" or ").find(|t| find_type(t).is_some())
        {
            complete(object_type, value, hints, depth);
        }
        return;
    }
    if let Some(item) = ty.strip_prefix("Array of ") {
        if let Value::Array(items) = value {
            for element in items {
                complete(item, element, hints, depth + 1);
            }
        }
        return;
    }
    let Some(found) = find_type(ty) else { return };
    if found.fields.is_empty() {
        if let Some(form) = variant_of(found, value) {
            complete(form, value, hints, depth + 1);
        }
        return;
    }
    let Value::Object(object) = value else { return };
    for field in found.fields {
        match object.get_mut(field.name) {
            Some(present) => complete(field.ty, present, hints, depth + 1),
            None => {
                let value = match field.lit {
                    Lit::Always(constant) | Lit::Sample(constant) => json!(constant),
                    Lit::None => plausible(field.ty, field.name, hints, depth + 1),
                };
                object.insert(field.name.to_owned(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(
            METHODS
                .windows(2)
                .all(|w| cmp_ignore_case(w[0].name, w[1].name) == Ordering::Less)
        );
        assert!(TYPES.windows(2).all(|w| w[0].name < w[1].name));
        assert_eq!(method("SENDmessage").map(|m| m.name), Some("sendMessage"));
        assert_eq!(method("sendTelepathy").map(|m| m.name), None);
        assert!(method_count() >= 185);
    }

    #[test]
    fn every_type_named_by_the_table_is_in_it() {
        let known = |ty: &str| {
            ty.trim_start_matches("Array of ")
                .split(" or ")
                .all(|t| find_type(t).is_some() || fits_primitive(t))
        };
        for m in METHODS {
            assert!(known(m.returns), "{}: {}", m.name, m.returns);
        }
        for t in TYPES {
            for f in t.fields {
                assert!(known(f.ty), "{}.{}: {}", t.name, f.name, f.ty);
            }
            for v in t.variants {
                assert!(find_type(v).is_some(), "{}: {v}", t.name);
            }
        }
    }

    fn fits_primitive(ty: &str) -> bool {
        matches!(ty, "Integer" | "Float" | "String" | "Boolean" | "True")
    }

    #[test]
    fn completion_fills_only_what_is_missing_and_picks_the_right_form() {
        let params = Map::new();
        let hints = Hints {
            params: &params,
            now: 7,
        };
        let mut member = json!({"status": "administrator", "user": {"id": 5}});
        complete("ChatMember", &mut member, &hints, 0);
        assert_eq!(member["user"]["id"], 5);
        assert_eq!(member["user"]["is_bot"], false);
        assert_eq!(member["can_be_edited"], false, "{member}");
        let mut chat = json!({"id": -5, "type": "group"});
        complete("ChatFullInfo", &mut chat, &hints, 0);
        assert_eq!(chat["type"], "group");
        assert_eq!(chat["accepted_gift_types"]["unique_gifts"], false);
        let mut sizes = json!([{"file_id": "a"}]);
        complete("Array of PhotoSize", &mut sizes, &hints, 0);
        assert_eq!(sizes[0]["file_id"], "a");
        assert_eq!(sizes[0]["width"], 640);
        let mut yes = json!(true);
        complete("Message or True", &mut yes, &hints, 0);
        assert_eq!(yes, json!(true));
    }
}
