//! One text per error: every variant of every error type declared in this
//! crate's source (found by parsing it) has a sample in `samples.rs`, and
//! none prints a cause twice.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use super::{Chain, samples};

/// Variants no sample can be made of, and why.
const UNMADE: &[(&str, &str, &str)] = &[(
    "ApiError",
    "Infer",
    "kube's InferConfigError has private fields (the variant is `Client`'s kind: a message and a #[source])",
)];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `attrs` derive an `Error` (`thiserror::Error`, `Error`).
fn derives_error(attrs: &[syn::Attribute]) -> bool {
    use syn::punctuated::Punctuated;
    attrs
        .iter()
        .filter(|a| a.path().is_ident("derive"))
        .any(|a| {
            a.parse_args_with(Punctuated::<syn::Path, syn::Token![,]>::parse_terminated)
                .unwrap()
                .iter()
                .any(|p| p.segments.last().is_some_and(|s| s.ident == "Error"))
        })
}

/// Each error type's variants (a struct's own name), in `items`.
fn error_variants(items: &[syn::Item], out: &mut BTreeSet<(String, String)>) {
    for item in items {
        match item {
            syn::Item::Enum(e) if derives_error(&e.attrs) => {
                for v in &e.variants {
                    out.insert((e.ident.to_string(), v.ident.to_string()));
                }
            }
            syn::Item::Struct(s) if derives_error(&s.attrs) => {
                out.insert((s.ident.to_string(), s.ident.to_string()));
            }
            syn::Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    error_variants(items, out);
                }
            }
            _ => {}
        }
    }
}

fn crate_sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

#[test]
fn every_error_variant_of_the_crate_has_a_sample() {
    let mut declared = BTreeSet::new();
    for (file, text) in crate_sources() {
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        error_variants(&parsed.items, &mut declared);
    }
    // Enough to show the parse found them: 25 types, 190-odd variants.
    assert!(declared.len() > 150, "{declared:?}");
    let sampled: BTreeSet<(String, String)> = samples::all()
        .into_iter()
        .map(|s| (s.ty.to_owned(), s.variant))
        .collect();
    let unmade: BTreeSet<(String, String)> = UNMADE
        .iter()
        .map(|(t, v, _)| ((*t).to_owned(), (*v).to_owned()))
        .collect();
    let missing: Vec<_> = declared
        .difference(&sampled)
        .filter(|v| !unmade.contains(*v))
        .collect();
    assert!(
        missing.is_empty(),
        "error variants without a sample in agent/src/error/samples.rs: {missing:?}"
    );
    let stray: Vec<_> = sampled.difference(&declared).collect();
    assert!(
        stray.is_empty(),
        "samples of no declared variant: {stray:?}"
    );
}

/// The rule itself: a message that prints its cause does not return it.
#[test]
fn no_error_prints_the_source_it_returns() {
    let mut twice = Vec::new();
    for s in samples::all() {
        let text = s.error.to_string();
        if let Some(source) = s.error.source() {
            let cause = source.to_string();
            if text.contains(&cause) {
                twice.push(format!(
                    "{}::{}: {text:?} returns {cause:?}",
                    s.ty, s.variant
                ));
            }
        }
    }
    assert!(twice.is_empty(), "{twice:#?}");
}

/// What a person reads (the CLI, the API, a log record): no link of the
/// chain holds another's text, whatever the libraries underneath do.
#[test]
fn no_printed_chain_repeats_a_link() {
    for s in samples::all() {
        let links: Vec<String> = Chain(&*s.error).links().collect();
        for (i, a) in links.iter().enumerate() {
            for b in &links[i + 1..] {
                assert!(
                    !a.contains(b.as_str()),
                    "{}::{}: {:?} holds {b:?}, printed as {}",
                    s.ty,
                    s.variant,
                    a,
                    Chain(&*s.error)
                );
            }
        }
        assert_eq!(Chain(&*s.error).to_string(), links.join(": "));
    }
}

/// aya's `EbpfError::MapError` prints its source and returns it too;
/// anyhow's `{:#}` says it twice, [`Chain`] once.
#[test]
fn a_map_the_kernel_refused_is_said_once() {
    let e = crate::datapath::DatapathError::Load(samples::map_refused());
    let once = "loading the eBPF object: map error: failed to create map `CT6`: \
                Operation not permitted (os error 1)";
    assert_eq!(Chain(&e).to_string(), once);
    let anyhow = format!("{:#}", anyhow::Error::from(e));
    assert_eq!(
        anyhow.matches("failed to create map `CT6`").count(),
        2,
        "{anyhow}"
    );
}

/// A log record names its error in its message, printed whole with
/// [`Chain`]: an `error` field of the error's `Display` shows only its
/// first link, and the journal's view of a record shows its message alone.
#[test]
fn log_records_print_errors_whole_in_their_message() {
    let mut fields = Vec::new();
    for (file, text) in crate_sources() {
        for (n, line) in text.lines().enumerate() {
            if line.contains(concat!("error = ", "%")) || line.contains(concat!("error = ", "?")) {
                fields.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        fields.is_empty(),
        "put the error in the message (\"...: {{}}\", Chain(&e)): {fields:#?}"
    );
}
