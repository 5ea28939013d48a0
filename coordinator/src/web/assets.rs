//! The web app's files, embedded in the binary: the pages' HTML, script and style
//! (coordinator/web/static/) and the chart library vendored from npm at pinned versions
//! (coordinator/web/package.json; refreshed by coordinator/web/vendor.sh). Nothing is fetched
//! from elsewhere at run time, so the app works offline and behind a region's firewall.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// Vendored files change only with a new pinned version; the app's own are revalidated.
    pub immutable: bool,
}

macro_rules! asset {
    ($path:literal, $type:literal, $immutable:literal) => {
        Asset { path: $path, content_type: $type, body: include_bytes!(concat!("../../web/static/", $path)), immutable: $immutable }
    };
}

/// Every file the app serves.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8", false),
    asset!("app.js", "text/javascript; charset=utf-8", false),
    asset!("app.css", "text/css; charset=utf-8", false),
    asset!("i18n.js", "text/javascript; charset=utf-8", false),
    asset!("vendor/d3.min.js", "text/javascript; charset=utf-8", true),
    asset!("vendor/plot.umd.min.js", "text/javascript; charset=utf-8", true),
    asset!("vendor/LICENSE-d3.txt", "text/plain; charset=utf-8", true),
    asset!("vendor/LICENSE-plot.txt", "text/plain; charset=utf-8", true),
];

/// The embedded file at `path`.
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The file as an HTTP response, or 404 naming the path.
pub fn respond(path: &str) -> Response {
    match find(path) {
        Some(a) => {
            let cache = if a.immutable { "public, max-age=604800" } else { "no-cache" };
            ([(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type)), (header::CACHE_CONTROL, HeaderValue::from_static(cache))], a.body).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("no file {} in the web app", norrsken_model::text::quote(path))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_scripts() {
        let html = std::str::from_utf8(find("index.html").unwrap().body).unwrap();
        for src in html.split("src=\"").skip(1).map(|s| &s[..s.find('"').unwrap()]) {
            let path = src.strip_prefix("/assets/").unwrap_or_else(|| panic!("{src} is not an embedded asset"));
            assert!(find(path).is_some(), "{src} is not embedded");
        }
        for href in html.split("href=\"").skip(1).map(|s| &s[..s.find('"').unwrap()]) {
            assert!(!href.starts_with("http"), "no external resources: {href}");
        }
        assert!(find("vendor/plot.umd.min.js").unwrap().body.starts_with(b"// @observablehq/plot v0.6.17"));
    }
}
