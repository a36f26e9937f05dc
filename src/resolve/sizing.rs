//! The "target size" of a channel's host folder, which a ScaleRule multiplies into a
//! memory requirement (reference §5.3, §5.4).
//!
//! Measuring walks the folder (a host fact, gathered before resolving); what a rule
//! selects and how it is compiled is in `model::target`.
//!
//! Fixed against the reference: `max_item_sum` with no item folders is 0 instead of a
//! crash; the glob and regex are compiled once per call and reported in plain words;
//! an unreadable folder is an error naming it (Python silently skipped it, which would
//! lower the memory limit); symlinked directories are never followed, so links cannot
//! loop, while a symlinked file counts with its target's size. A `target_dir` that is
//! absolute or climbs out with `..` is refused, since it would measure some other folder.
//!
//! Differences that remain: see `model::target` (fancy-regex syntax, `{a,b}` globs).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::model::target::{Selection, SizeMode, SizingError, Target};

/// A measured size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Measurement {
    /// The size the mode asks for, in bytes.
    pub bytes: u64,
    /// How many files that size was taken from: all selected files for `Sum` and
    /// `MaxFileSize`, the selected files of the winning item for `MaxItemSum`.
    pub files: u64,
}

/// Measures the target size of `host_path` (reference §5.4, with its bugs fixed; see the
/// module documentation). A missing folder measures 0 bytes, as does a host path that is
/// a file rather than a folder.
pub(crate) fn measure(
    host_path: &Path,
    mode: SizeMode,
    target: &Target<'_>,
) -> Result<Measurement, SizingError> {
    let selection = Selection::compile(target)?;
    match mode {
        SizeMode::Sum => {
            let tally = tally(&selection, &selection.base(host_path))?;
            Ok(Measurement {
                bytes: tally.sum,
                files: tally.files,
            })
        }
        SizeMode::MaxFileSize => {
            let tally = tally(&selection, &selection.base(host_path))?;
            Ok(Measurement {
                bytes: tally.largest,
                files: tally.files,
            })
        }
        SizeMode::MaxItemSum => {
            // The first item in name order wins a tie; no items at all measure 0.
            let mut best: Option<Measurement> = None;
            for item in item_folders(host_path)? {
                let tally = tally(&selection, &selection.base(&item))?;
                if best.is_none_or(|best| tally.sum > best.bytes) {
                    best = Some(Measurement {
                        bytes: tally.sum,
                        files: tally.files,
                    });
                }
            }
            Ok(best.unwrap_or_default())
        }
    }
}

/// Sizes of the selected files below one base folder.
#[derive(Debug, Default)]
struct Tally {
    sum: u64,
    largest: u64,
    files: u64,
}

/// Walks `base` once and adds up the files `selection` selects.
fn tally(selection: &Selection<'_>, base: &Path) -> Result<Tally, SizingError> {
    let mut tally = Tally::default();
    match fs::metadata(base) {
        Ok(metadata) if metadata.is_dir() => {}
        // Nothing to measure: a missing folder or a single file counts as empty.
        Ok(_) => return Ok(tally),
        // Also when a path component is a file (`file.dcm/target_dir`).
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(tally);
        }
        Err(error) => return Err(unreadable(base, &error)),
    }
    // follow_links(false): symlinked folders are not entered, so links cannot loop;
    // a symlinked `base` itself is still followed (walkdir's root rule).
    for entry in WalkDir::new(base).min_depth(1).follow_links(false) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => match error.io_error() {
                // Removed while walking: it no longer takes up space.
                Some(io_error) if io_error.kind() == io::ErrorKind::NotFound => continue,
                Some(io_error) => {
                    return Err(unreadable(error.path().unwrap_or(base), io_error));
                }
                None => {
                    let error = io::Error::other(error.to_string());
                    return Err(unreadable(base, &error));
                }
            },
        };
        let file_type = entry.file_type();
        if file_type.is_dir() {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(base) else {
            continue;
        };
        if !selection.selects(relative)? {
            continue;
        }
        let size = if file_type.is_file() {
            match entry.metadata() {
                Ok(metadata) => metadata.len(),
                Err(error) => match error.io_error() {
                    Some(io_error) if io_error.kind() == io::ErrorKind::NotFound => continue,
                    Some(io_error) => return Err(unreadable(entry.path(), io_error)),
                    None => continue,
                },
            }
        } else if file_type.is_symlink() {
            // Like Python's `is_file()`: a link counts when it leads to a regular
            // file; dangling or looping links, and links to folders, do not.
            match fs::metadata(entry.path()) {
                Ok(metadata) if metadata.is_file() => metadata.len(),
                _ => continue,
            }
        } else {
            // Sockets, FIFOs and devices are not files with a size.
            continue;
        };
        tally.sum = tally.sum.saturating_add(size);
        tally.largest = tally.largest.max(size);
        tally.files += 1;
    }
    Ok(tally)
}

/// The immediate subfolders of `host_path` in name order; symlinks to folders are not
/// items (they are never followed). A missing host path has none.
fn item_folders(host_path: &Path) -> Result<Vec<PathBuf>, SizingError> {
    let entries = match fs::read_dir(host_path) {
        Ok(entries) => entries,
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Vec::new());
        }
        Err(error) => return Err(unreadable(host_path, &error)),
    };
    let mut items = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| unreadable(host_path, &error))?;
        match entry.file_type() {
            Ok(file_type) if file_type.is_dir() => items.push(entry.path()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(unreadable(&entry.path(), &error)),
        }
    }
    items.sort();
    Ok(items)
}

fn unreadable(path: &Path, error: &io::Error) -> SizingError {
    SizingError {
        message: format!(
            "cannot read `{}` to measure its size: {error}",
            path.display()
        ),
        fix: format!(
            "check that it is a folder the user running tapir can read (e.g. `chmod -R u+rX {}`), \
             or remove the scale rule",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::target::validate_target;

    use std::fs::File;
    use std::io::Write;

    use tempfile::TempDir;

    fn write_file(root: &Path, relative: &str, size: usize) {
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent folders");
        }
        let mut file = File::create(&path).expect("create file");
        file.write_all(&vec![b'x'; size]).expect("write file");
    }

    /// The reference's worked example (§5.4).
    fn example_tree() -> TempDir {
        let root = tempfile::tempdir().expect("temporary folder");
        write_file(root.path(), "item1/a.dcm", 100);
        write_file(root.path(), "item1/sub/b.dcm", 300);
        write_file(root.path(), "item1/c.txt", 50);
        write_file(root.path(), "item2/d.dcm", 250);
        write_file(root.path(), "top.dcm", 1000);
        root
    }

    fn bytes(root: &Path, mode: SizeMode, dir: &str, glob: &str, regex: &str) -> u64 {
        let target = Target { dir, glob, regex };
        match measure(root, mode, &target) {
            Ok(measurement) => measurement.bytes,
            Err(error) => panic!("measure {mode:?} {target:?}: {error}"),
        }
    }

    fn error(root: &Path, mode: SizeMode, target: Target<'_>) -> SizingError {
        match measure(root, mode, &target) {
            Ok(measurement) => panic!("{target:?} should fail, measured {measurement:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn reference_worked_example() {
        let tree = example_tree();
        let root = tree.path();
        assert_eq!(bytes(root, SizeMode::Sum, "", "*", ".*"), 1700);
        assert_eq!(bytes(root, SizeMode::Sum, "", "*.dcm", ".*"), 1650);
        assert_eq!(bytes(root, SizeMode::Sum, "", "*", r"[^/]*\.dcm"), 1000);
        assert_eq!(bytes(root, SizeMode::Sum, "item1", "*", ".*"), 450);
        assert_eq!(bytes(root, SizeMode::MaxFileSize, "", "*", ".*"), 1000);
        assert_eq!(bytes(root, SizeMode::MaxItemSum, "", "*", ".*"), 450);
        assert_eq!(bytes(root, SizeMode::MaxItemSum, "", "*.dcm", ".*"), 400);
    }

    #[test]
    fn defaults_select_everything() {
        let target = Target::default();
        assert_eq!((target.dir, target.glob, target.regex), ("", "*", ".*"));
        let tree = example_tree();
        let measurement = measure(tree.path(), SizeMode::Sum, &target).expect("measure");
        assert_eq!(
            measurement,
            Measurement {
                bytes: 1700,
                files: 5
            }
        );
    }

    #[test]
    fn file_counts_follow_the_mode() {
        let tree = example_tree();
        let root = tree.path();
        let dcm = Target {
            glob: "*.dcm",
            ..Target::default()
        };
        let sum = measure(root, SizeMode::Sum, &dcm).expect("sum");
        assert_eq!(
            sum,
            Measurement {
                bytes: 1650,
                files: 4
            }
        );
        let largest = measure(root, SizeMode::MaxFileSize, &dcm).expect("max_file_size");
        assert_eq!(
            largest,
            Measurement {
                bytes: 1000,
                files: 4
            }
        );
        let item = measure(root, SizeMode::MaxItemSum, &dcm).expect("max_item_sum");
        assert_eq!(
            item,
            Measurement {
                bytes: 400,
                files: 2
            }
        );
    }

    #[test]
    fn regex_must_match_the_whole_relative_path() {
        let tree = example_tree();
        let root = tree.path();
        // Not a substring search: `dcm` alone matches no full path.
        assert_eq!(bytes(root, SizeMode::Sum, "", "*", "dcm"), 0);
        assert_eq!(bytes(root, SizeMode::Sum, "", "*", r".*\.dcm"), 1650);
        assert_eq!(bytes(root, SizeMode::Sum, "", "*", "item1/.*"), 450);
        assert_eq!(bytes(root, SizeMode::Sum, "", "*", "item1/sub/b.dcm"), 300);
        // Alternatives stay inside the anchors.
        assert_eq!(
            bytes(root, SizeMode::Sum, "", "*", "top.dcm|item2/d.dcm"),
            1250
        );
        // Relative to the target folder, not to the host path.
        assert_eq!(bytes(root, SizeMode::Sum, "item1", "*", r"[^/]*\.dcm"), 100);
    }

    #[test]
    fn glob_follows_python_rglob() {
        let tree = example_tree();
        let root = tree.path();
        // `*` matches file names in every folder, never across `/`.
        assert_eq!(bytes(root, SizeMode::Sum, "", "?.dcm", ".*"), 650);
        assert_eq!(bytes(root, SizeMode::Sum, "", "*.txt", ".*"), 50);
        // A glob with `/` matches the trailing components, at any depth.
        assert_eq!(bytes(root, SizeMode::Sum, "", "sub/*.dcm", ".*"), 300);
        assert_eq!(bytes(root, SizeMode::Sum, "", "item1/*.dcm", ".*"), 100);
        assert_eq!(bytes(root, SizeMode::Sum, "", "item1/**/*.dcm", ".*"), 400);
        assert_eq!(bytes(root, SizeMode::Sum, "", "**/*.dcm", ".*"), 1650);
        assert_eq!(bytes(root, SizeMode::Sum, "", "[a-c].*", ".*"), 450);
        assert_eq!(bytes(root, SizeMode::Sum, "", "[!a-c].*", ".*"), 250);
        // Case-sensitive, as on POSIX.
        assert_eq!(bytes(root, SizeMode::Sum, "", "*.DCM", ".*"), 0);
    }

    #[test]
    fn hidden_files_are_selected_by_star() {
        let root = tempfile::tempdir().expect("temporary folder");
        write_file(root.path(), ".hidden", 7);
        write_file(root.path(), ".cache/x.dcm", 3);
        assert_eq!(bytes(root.path(), SizeMode::Sum, "", "*", ".*"), 10);
    }

    #[test]
    fn missing_folders_measure_zero() {
        let tree = example_tree();
        let missing = tree.path().join("does-not-exist");
        for mode in [SizeMode::Sum, SizeMode::MaxFileSize, SizeMode::MaxItemSum] {
            let measurement = measure(&missing, mode, &Target::default()).expect("missing folder");
            assert_eq!(measurement, Measurement::default(), "{mode:?}");
        }
        assert_eq!(bytes(tree.path(), SizeMode::Sum, "nope", "*", ".*"), 0);
        // An item without the target folder contributes 0; the other item wins.
        assert_eq!(
            bytes(tree.path(), SizeMode::MaxItemSum, "sub", "*", ".*"),
            300
        );
    }

    #[test]
    fn a_file_as_host_path_measures_zero() {
        let tree = example_tree();
        let file = tree.path().join("top.dcm");
        for mode in [SizeMode::Sum, SizeMode::MaxFileSize, SizeMode::MaxItemSum] {
            assert_eq!(bytes(&file, mode, "", "*", ".*"), 0, "{mode:?}");
        }
    }

    #[test]
    fn max_item_sum_without_items_is_zero() {
        let root = tempfile::tempdir().expect("temporary folder");
        assert_eq!(bytes(root.path(), SizeMode::MaxItemSum, "", "*", ".*"), 0);
        write_file(root.path(), "loose.dcm", 500);
        let measurement =
            measure(root.path(), SizeMode::MaxItemSum, &Target::default()).expect("measure");
        assert_eq!(measurement, Measurement::default());
    }

    #[test]
    fn max_item_sum_counts_empty_items() {
        let root = tempfile::tempdir().expect("temporary folder");
        fs::create_dir(root.path().join("empty")).expect("create folder");
        assert_eq!(bytes(root.path(), SizeMode::MaxItemSum, "", "*", ".*"), 0);
    }

    #[test]
    fn max_file_size_respects_the_selection() {
        let tree = example_tree();
        let root = tree.path();
        assert_eq!(bytes(root, SizeMode::MaxFileSize, "item1", "*", ".*"), 300);
        assert_eq!(bytes(root, SizeMode::MaxFileSize, "", "*.txt", ".*"), 50);
        assert_eq!(bytes(root, SizeMode::MaxFileSize, "", "*.nii", ".*"), 0);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_files_count_and_symlinked_folders_are_not_followed() {
        use std::os::unix::fs::symlink;

        let tree = example_tree();
        let root = tree.path();
        let outside = tempfile::tempdir().expect("temporary folder");
        write_file(outside.path(), "big.dcm", 4000);
        write_file(outside.path(), "folder/inner.dcm", 8000);
        symlink(outside.path().join("big.dcm"), root.join("item2/link.dcm")).expect("file link");
        symlink(
            outside.path().join("folder"),
            root.join("item2/folder-link"),
        )
        .expect("folder link");
        // A link back to the root would loop forever if followed.
        symlink(root, root.join("item1/loop")).expect("loop link");
        symlink(root.join("gone.dcm"), root.join("item1/dangling.dcm")).expect("dangling link");
        // A symlinked item folder is not an item.
        symlink(outside.path().join("folder"), root.join("item3")).expect("item link");

        assert_eq!(bytes(root, SizeMode::Sum, "", "*", ".*"), 1700 + 4000);
        assert_eq!(bytes(root, SizeMode::MaxFileSize, "", "*", ".*"), 4000);
        assert_eq!(bytes(root, SizeMode::MaxItemSum, "", "*", ".*"), 4250);
        // A symlinked host path (or target folder) itself is followed.
        let linked_root = outside.path().join("root-link");
        symlink(root, &linked_root).expect("root link");
        assert_eq!(
            bytes(&linked_root, SizeMode::Sum, "item1", "*.dcm", ".*"),
            400
        );
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_folder_is_an_error_naming_it() {
        use std::os::unix::fs::PermissionsExt;

        let tree = example_tree();
        let locked = tree.path().join("item1/sub");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).expect("chmod");
        // Root reads through permissions, so under root this checks only that the walk
        // succeeds; `a_folder_that_cannot_be_opened_is_an_error_naming_it` covers the
        // error path for every user.
        let readable_anyway = fs::read_dir(&locked).is_ok();
        let result = measure(tree.path(), SizeMode::Sum, &Target::default());
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).expect("chmod back");
        if readable_anyway {
            assert_eq!(result.map(|m| m.bytes), Ok(1700));
            return;
        }
        let error = result.expect_err("unreadable folder");
        assert!(
            error.message.contains(&locked.display().to_string()),
            "{error}"
        );
        assert!(error.fix.contains("chmod"), "{}", error.fix);
    }

    #[test]
    fn a_file_in_place_of_a_folder_measures_zero() {
        let tree = example_tree();
        let file = tree.path().join("top.dcm");
        assert_eq!(bytes(&file, SizeMode::Sum, "series", "*", ".*"), 0);
        assert_eq!(
            bytes(tree.path(), SizeMode::Sum, "top.dcm/series", "*", ".*"),
            0
        );
    }

    #[test]
    fn a_folder_that_cannot_be_opened_is_an_error_naming_it() {
        // A name longer than any file system allows fails even for root, unlike chmod.
        let tree = example_tree();
        let long_name = "x".repeat(300);
        let target = Target {
            dir: &long_name,
            ..Target::default()
        };
        let error = error(tree.path(), SizeMode::Sum, target);
        assert!(error.message.starts_with("cannot read `"), "{error}");
        assert!(error.message.contains(&long_name), "{error}");
        assert!(error.fix.contains("chmod"), "{}", error.fix);
    }

    #[test]
    fn bad_glob_is_reported() {
        let tree = example_tree();
        let bad = Target {
            glob: "[abc",
            ..Target::default()
        };
        let error = error(tree.path(), SizeMode::Sum, bad);
        assert!(
            error
                .message
                .starts_with("target_glob `[abc` is not a valid glob: "),
            "{error}"
        );
        assert!(
            !error.message.contains("**/"),
            "the internal prefix leaks: {error}"
        );
        assert_eq!(validate_target(&bad), Err(error));

        let empty = Target {
            glob: "",
            ..Target::default()
        };
        assert!(validate_target(&empty).is_err());
        let absolute = Target {
            glob: "/data/*.dcm",
            ..Target::default()
        };
        let error = validate_target(&absolute).expect_err("absolute glob");
        assert!(error.fix.contains("`data/*.dcm`"), "{}", error.fix);
    }

    #[test]
    fn bad_regex_is_reported_in_one_line() {
        let tree = example_tree();
        let bad = Target {
            regex: "(abc",
            ..Target::default()
        };
        let error = error(tree.path(), SizeMode::MaxItemSum, bad);
        assert!(
            error
                .message
                .starts_with("target_regex `(abc` is not a valid regular expression: "),
            "{error}"
        );
        assert!(!error.message.contains('\n'), "{error}");
        assert_eq!(validate_target(&bad), Err(error));
    }

    #[test]
    fn regex_cannot_escape_the_anchors() {
        let escape = Target {
            regex: "a)|(b",
            ..Target::default()
        };
        assert!(validate_target(&escape).is_err());
    }

    #[test]
    fn target_dir_must_stay_inside_the_channel_folder() {
        for dir in ["/etc", "..", "series/../../x"] {
            let target = Target {
                dir,
                ..Target::default()
            };
            let error = validate_target(&target).expect_err(dir);
            assert!(error.message.contains(&format!("`{dir}`")), "{error}");
        }
        let nested = Target {
            dir: "./item1/sub/",
            ..Target::default()
        };
        assert_eq!(validate_target(&nested), Ok(()));
        let tree = example_tree();
        assert_eq!(
            bytes(tree.path(), SizeMode::Sum, "./item1/sub/", "*", ".*"),
            300
        );
    }

    #[test]
    fn validate_accepts_good_targets() {
        assert_eq!(validate_target(&Target::default()), Ok(()));
        let target = Target {
            dir: "series",
            glob: "**/*.{dcm,DCM}",
            regex: r"(?i).*\.dcm",
        };
        assert_eq!(validate_target(&target), Ok(()));
    }

    #[test]
    fn error_display_is_the_message() {
        let error = validate_target(&Target {
            regex: "(",
            ..Target::default()
        })
        .expect_err("bad regex");
        assert_eq!(error.to_string(), error.message);
    }

    #[test]
    fn look_around_works_as_in_python_re() {
        let tree = example_tree();
        let root = tree.path();
        // Negative look-ahead: every file but the one named `b…` (300 of 1700 bytes).
        assert_eq!(
            bytes(root, SizeMode::Sum, "", "*", r"(?!(.*/)?b[^/]*$).*"),
            1400
        );
        // Look-behind: paths ending in `.dcm` (all but c.txt's 50 bytes).
        assert_eq!(bytes(root, SizeMode::Sum, "", "*", r".*(?<=\.dcm)"), 1650);
        // Positive look-ahead: inside item1 only.
        assert_eq!(bytes(root, SizeMode::Sum, "", "*", r"(?=item1/).*"), 450);
        // validate compiles with the same engine, so it accepts what sizing accepts.
        for regex in [r"(?!x).*", r".*(?<=\.dcm)", r"(?<!a)b"] {
            let target = Target {
                regex,
                ..Target::default()
            };
            assert_eq!(validate_target(&target), Ok(()), "{regex}");
        }
    }
}
