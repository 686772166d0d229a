//! Turns the four ways a Bot API call can carry its parameters (query string,
//! JSON, urlencoded form, multipart form) into one JSON object, typed the way
//! Telegram types them, so recorded calls look the same whatever the client
//! library chose to send.

use serde_json::{Map, Value};

use super::error::ApiError;

/// Parameters whose value is a JSON document; form encodings carry them as
/// serialized JSON strings and Telegram decodes them.
fn is_json_field(name: &str) -> bool {
    matches!(
        name,
        "reply_markup"
            | "entities"
            | "caption_entities"
            | "allowed_updates"
            | "commands"
            | "scope"
            | "link_preview_options"
            | "reply_parameters"
            | "permissions"
            | "media"
            | "results"
            | "prices"
            | "options"
            | "menu_button"
            | "reaction"
            | "message_ids"
            | "explanation_entities"
            | "button"
            | "rights"
            | "stickers"
    )
}

/// Integer parameters; strings holding a number become numbers, anything else
/// (such as `@channelusername`) stays a string.
fn is_integer_field(name: &str) -> bool {
    matches!(
        name,
        "chat_id"
            | "from_chat_id"
            | "message_id"
            | "user_id"
            | "offset"
            | "limit"
            | "timeout"
            | "max_connections"
            | "until_date"
            | "message_thread_id"
            | "reply_to_message_id"
            | "cache_time"
            | "sender_chat_id"
            | "date"
            | "expire_date"
            | "member_limit"
    )
}

fn is_bool_field(name: &str) -> bool {
    matches!(
        name,
        "disable_notification"
            | "protect_content"
            | "drop_pending_updates"
            | "show_alert"
            | "revoke_messages"
            | "only_if_banned"
            | "disable_web_page_preview"
            | "allow_sending_without_reply"
            | "use_independent_chat_permissions"
            | "is_anonymous"
            | "is_personal"
            | "is_big"
            | "allow_paid_broadcast"
            | "has_spoiler"
            | "show_caption_above_media"
            | "creates_join_request"
    )
}

/// Gives a parameter the type Telegram would give it. Values already of the
/// right type pass through, so JSON bodies and form bodies end up equal.
fn normalize(name: &str, value: Value) -> Result<Value, ApiError> {
    let Value::String(text) = value else {
        return Ok(value);
    };
    if is_json_field(name) {
        return serde_json::from_str(&text).map_err(|_| {
            if name == "reply_markup" {
                ApiError::bad_request("can't parse reply keyboard markup JSON object")
            } else {
                ApiError::bad_request(format!("can't parse {name} JSON object"))
            }
        });
    }
    if is_integer_field(name) {
        if let Ok(number) = text.trim().parse::<i64>() {
            return Ok(Value::from(number));
        }
    } else if is_bool_field(name) {
        match text.as_str() {
            "true" | "True" | "1" => return Ok(Value::Bool(true)),
            "false" | "False" | "0" => return Ok(Value::Bool(false)),
            _ => {}
        }
    }
    Ok(Value::String(text))
}

fn insert(params: &mut Map<String, Value>, name: String, value: Value) -> Result<(), ApiError> {
    let value = normalize(&name, value)?;
    params.insert(name, value);
    Ok(())
}

/// Builds the parameter object from the query string and the body; body
/// parameters override query parameters of the same name.
pub(crate) fn parse(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    let mut params = Map::new();
    if let Some(query) = query {
        parse_urlencoded(query.as_bytes(), &mut params)?;
    }
    if body.is_empty() {
        return Ok(params);
    }
    let content_type = content_type.unwrap_or("");
    let (mime, attributes) = content_type.split_once(';').unwrap_or((content_type, ""));
    match mime.trim().to_ascii_lowercase().as_str() {
        "application/json" => parse_json(body, &mut params)?,
        "application/x-www-form-urlencoded" => parse_urlencoded(body, &mut params)?,
        "multipart/form-data" => {
            let boundary = attribute(attributes, "boundary")
                .ok_or_else(|| ApiError::bad_request("multipart boundary is not specified"))?;
            parse_multipart(body, &boundary, &mut params)?;
        }
        // Telegram ignores bodies it cannot decode; the missing parameters
        // then produce the usual "... is empty" errors.
        _ => {}
    }
    Ok(params)
}

fn parse_json(body: &[u8], params: &mut Map<String, Value>) -> Result<(), ApiError> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Err(ApiError::bad_request("can't parse request JSON object"));
    };
    for (name, value) in object {
        insert(params, name, value)?;
    }
    Ok(())
}

fn parse_urlencoded(input: &[u8], params: &mut Map<String, Value>) -> Result<(), ApiError> {
    for pair in input.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &[][..]),
        };
        insert(
            params,
            percent_decode(name),
            Value::String(percent_decode(value)),
        )?;
    }
    Ok(())
}

/// Decodes `application/x-www-form-urlencoded` text; malformed escapes are kept
/// literally, as browsers and most servers do.
pub(crate) fn percent_decode(input: &[u8]) -> String {
    fn hex(byte: u8) -> Option<u8> {
        (byte as char).to_digit(16).map(|d| d as u8)
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let decoded = input
                    .get(i + 1..i + 3)
                    .and_then(|pair| Some(hex(pair[0])? << 4 | hex(pair[1])?));
                match decoded {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Reads `name=value` or `name="value"` from a header's `;`-separated
/// attributes (the part after the main value).
fn attribute(attributes: &str, wanted: &str) -> Option<String> {
    let mut rest = attributes;
    loop {
        rest = rest.trim_start_matches([';', ' ', '\t']);
        if rest.is_empty() {
            return None;
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        rest = &rest[eq + 1..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((at, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = at + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            rest = &quoted[end..];
            value
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            let value = rest[..end].trim().to_owned();
            rest = &rest[end..];
            value
        };
        if name.eq_ignore_ascii_case(wanted) {
            return Some(value);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn malformed() -> ApiError {
    ApiError::bad_request("can't parse multipart/form-data body")
}

/// Parses a `multipart/form-data` body (RFC 7578). Text parts become string
/// parameters; file parts become `{"file_name", "content_type", "size"}`
/// objects, since the fake keeps no file contents.
fn parse_multipart(
    body: &[u8],
    boundary: &str,
    params: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    let opening = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    let start = find(body, opening.as_bytes()).ok_or_else(malformed)?;
    let mut rest = &body[start + opening.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Ok(());
        }
        // Transport padding may follow a delimiter before its line break.
        let line_end = find(rest, b"\r\n").ok_or_else(malformed)?;
        rest = &rest[line_end + 2..];
        let headers_end = find(rest, b"\r\n\r\n").map(|at| at + 4);
        let (headers, content_start) = match headers_end {
            Some(end) => (&rest[..end - 4], end),
            // A part with no headers at all starts with the empty line.
            None if rest.starts_with(b"\r\n") => (&rest[..0], 2),
            None => return Err(malformed()),
        };
        let content_len =
            find(&rest[content_start..], delimiter.as_bytes()).ok_or_else(malformed)?;
        let content = &rest[content_start..content_start + content_len];
        rest = &rest[content_start + content_len + delimiter.len()..];

        let headers = String::from_utf8_lossy(headers);
        let mut name = None;
        let mut file_name = None;
        let mut content_type = None;
        for line in headers.split("\r\n") {
            let Some((header, value)) = line.split_once(':') else {
                continue;
            };
            let header = header.trim();
            if header.eq_ignore_ascii_case("content-disposition") {
                let attributes = value.split_once(';').map_or("", |(_, a)| a);
                name = attribute(attributes, "name");
                file_name = attribute(attributes, "filename");
            } else if header.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.trim().to_owned());
            }
        }
        let Some(name) = name else { continue };
        let value = match file_name {
            Some(file_name) => serde_json::json!({
                "file_name": file_name,
                "content_type": content_type.unwrap_or_else(|| "application/octet-stream".to_owned()),
                "size": content.len(),
            }),
            None => Value::String(String::from_utf8_lossy(content).into_owned()),
        };
        insert(params, name, value)?;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_form(body: &str) -> Value {
        let form = Some("application/x-www-form-urlencoded; charset=utf-8");
        Value::Object(parse(None, form, body.as_bytes()).unwrap())
    }

    #[test]
    fn urlencoded_values_are_decoded_and_typed() {
        assert_eq!(
            parse_form(
                "text=a+b%20c%zz%4&chat_id=-5&disable_notification=true&flag&caption=%F0%9F%98%80"
            ),
            json!({"text": "a b c%zz%4", "chat_id": -5, "disable_notification": true,
                   "flag": "", "caption": "\u{1F600}"})
        );
        assert_eq!(
            parse_form("chat_id=%40channel"),
            json!({"chat_id": "@channel"})
        );
        let error = parse(
            None,
            Some("application/x-www-form-urlencoded"),
            b"reply_markup=%7B",
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Bad Request: can't parse reply keyboard markup JSON object"
        );
    }

    #[test]
    fn body_overrides_query_and_unknown_types_are_ignored() {
        let params = parse(
            Some("chat_id=1&text=q"),
            Some("application/json"),
            br#"{"text":"b"}"#,
        )
        .unwrap();
        assert_eq!(Value::Object(params), json!({"chat_id": 1, "text": "b"}));
        let params = parse(Some("a=1"), Some("text/plain"), b"chat_id=2").unwrap();
        assert_eq!(Value::Object(params), json!({"a": "1"}));
        assert!(parse(None, Some("application/json"), b"[1]").is_err());
    }

    #[test]
    fn multipart_with_preamble_padding_and_escaped_names() {
        let body = b"preamble\r\n--abc  \r\nContent-Disposition: form-data; name=\"a\\\"b\"\r\n\r\nline1\r\nline2\r\n--abc\r\ncontent-disposition: form-data; name=entities\r\n\r\n[]\r\n--abc--";
        let params = parse(
            None,
            Some("multipart/form-data; charset=utf-8; boundary=abc"),
            body,
        )
        .unwrap();
        assert_eq!(
            Value::Object(params),
            json!({"a\"b": "line1\r\nline2", "entities": []})
        );
        let truncated = b"--abc\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end";
        assert!(parse(None, Some("multipart/form-data; boundary=abc"), truncated).is_err());
    }
}
