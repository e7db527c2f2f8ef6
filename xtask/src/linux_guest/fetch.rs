//! Fetching the guest kernels (scripts/fetch-linux-guest.sh) and reading their configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::build;

/// A fetched kernel.
#[derive(Debug, Clone)]
pub(super) struct Kernel {
    /// The Debian suite it came from: `bookworm` or `bookworm-backports`.
    pub suite: String,
    /// Its release, as `uname -r` would say: `6.1.0-28-cloud-amd64`.
    pub version: String,
    /// The bzImage.
    pub image: PathBuf,
    /// CONFIG_HZ, from the kernel's config file beside the image (for computing `lpj=`).
    pub hz: Option<u64>,
    /// Built with CONFIG_HOTPLUG_PARALLEL: `cpuhp.parallel=0` means something to it.
    pub parallel_bringup: bool,
}

/// Fetches the kernels of `suites` (nothing is downloaded when they are already unpacked).
pub(super) fn fetch(suites: &[&str]) -> Result<Vec<Kernel>, String> {
    let script = build::root().join("scripts/fetch-linux-guest.sh");
    // The script's messages (what it downloads, or what to install by hand) go straight to
    // the terminal; its stdout is one `kernel SUITE VERSION PATH` line per suite.
    let out = Command::new("bash")
        .arg(&script)
        .args(suites)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed (its messages above say what to install by hand)",
            script.display()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut kernels = Vec::new();
    for line in text.lines() {
        let mut words = line.splitn(4, ' ');
        let (Some("kernel"), Some(suite), Some(version), Some(path)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let image = PathBuf::from(path);
        let config = kernel_config(&image, version);
        kernels.push(Kernel {
            suite: suite.to_string(),
            version: version.to_string(),
            hz: config_value(&config, "CONFIG_HZ").and_then(|v| v.parse().ok()),
            parallel_bringup: config_value(&config, "CONFIG_HOTPLUG_PARALLEL") == Some("y"),
            image,
        });
    }
    if kernels.len() != suites.len() {
        return Err(format!(
            "{} printed {} kernel(s) for {} suite(s):\n{text}",
            script.display(),
            kernels.len(),
            suites.len()
        ));
    }
    Ok(kernels)
}

/// The text of `boot/config-VERSION` beside `boot/vmlinuz-VERSION` (empty if missing).
fn kernel_config(image: &Path, version: &str) -> String {
    let path = image.with_file_name(format!("config-{version}"));
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `CONFIG_X=value` → `value`.
fn config_value<'a>(config: &'a str, key: &str) -> Option<&'a str> {
    config
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sources scripts/apt-backports.sh (what fetch-linux-guest.sh does for the 6.12 kernel)
    /// over a fake apt directory holding `files`, runs `add_bookworm_backports` and returns
    /// its status, its message and the source it wrote.
    fn add_backports(name: &str, files: &[(&str, &str)]) -> (String, String, String) {
        let dir =
            std::env::temp_dir().join(format!("rust-multicore-apt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sources.list.d")).unwrap();
        for (path, text) in files {
            std::fs::write(dir.join(path), text).unwrap();
        }
        let script = build::root().join("scripts/apt-backports.sh");
        let out = Command::new("bash")
            .arg("-c")
            .arg(
                r#"set -euo pipefail
                say() { echo "$*"; }
                as_root() { "$@"; }
                . "$1"
                status=0; add_bookworm_backports || status=$?
                echo "status $status""#,
            )
            .arg("bash")
            .arg(&script)
            .env("APT_BACKPORTS_ETC", &dir)
            .output()
            .unwrap();
        let written = dir.join("sources.list.d/bookworm-backports.sources");
        let written = std::fs::read_to_string(written).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (said, status) = text.trim_end().rsplit_once('\n').unwrap_or(("", &text));
        (status.trim().to_string(), said.to_string(), written)
    }

    #[test]
    fn backports_come_from_the_bookworm_mirror() {
        let uris = |written: &str| {
            written
                .lines()
                .find_map(|l| l.strip_prefix("URIs: "))
                .map(str::to_string)
        };
        // This machine's layout: deb822, bookworm beside -updates, -security apart, a disabled
        // file apt does not read.
        let deb822 = "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
            URIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
            Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n\
            Suites: bookworm-security\nComponents: main\n";
        let (status, said, written) = add_backports(
            "deb822",
            &[
                ("sources.list.d/debian.sources", deb822),
                (
                    "sources.list.d/old.list.disabled",
                    "deb http://disabled.example/debian bookworm main\n",
                ),
            ],
        );
        assert_eq!(status, "status 0");
        assert!(said.contains("from the mirror of bookworm in"), "{said}");
        assert_eq!(
            uris(&written).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert!(written.contains("Suites: bookworm-backports\n"));

        // A disabled paragraph, a deb-src one and a value on continuation lines.
        let (_, _, written) = add_backports(
            "continued",
            &[(
                "sources.list.d/a.sources",
                "Types: deb\nURIs: http://off.example/\nSuites: bookworm\nEnabled: no\n\n\
                 Types: deb-src\nURIs: http://src.example/\nSuites: bookworm\n\n\
                 types: deb\nURIs:\n  http://second.example/debian\n  http://third.example/\n\
                 Suites: bookworm-updates\n  bookworm\n",
            )],
        );
        assert_eq!(
            uris(&written).as_deref(),
            Some("http://second.example/debian")
        );

        // One-line entries: options in brackets; comments and deb-src lines do not count.
        let (status, _, written) = add_backports(
            "one-line",
            &[(
                "sources.list",
                "# deb http://commented.example/ bookworm main\n\
                 deb-src http://src.example/ bookworm main\n\
                 deb http://security.example/ bookworm-security main\n\
                 deb [arch=amd64 signed-by=/k.gpg] https://one.example/debian/ bookworm main\n",
            )],
        );
        assert_eq!(status, "status 0");
        assert_eq!(
            uris(&written).as_deref(),
            Some("https://one.example/debian/")
        );

        // No bookworm source: deb.debian.org, and it says so.
        let (status, said, written) = add_backports(
            "none",
            &[(
                "sources.list.d/other.list",
                "deb https://packages.example/apt cloud-sdk-bookworm main\n",
            )],
        );
        assert_eq!(status, "status 0");
        assert!(said.contains("no apt source names bookworm"), "{said}");
        assert_eq!(
            uris(&written).as_deref(),
            Some("http://deb.debian.org/debian")
        );

        // Already there (not in a comment): nothing written.
        let (status, _, written) = add_backports(
            "present",
            &[
                ("sources.list.d/debian.sources", deb822),
                (
                    "sources.list",
                    "# deb http://x/ bookworm-backports main\n\
                     deb http://mirror.example/debian bookworm-backports main\n",
                ),
            ],
        );
        assert_eq!((status.as_str(), written.as_str()), ("status 1", ""));
    }

    #[test]
    fn reads_kernel_configs() {
        let config = "# comment\nCONFIG_HZ_250=y\nCONFIG_HZ=250\nCONFIG_HOTPLUG_PARALLEL=y\n";
        assert_eq!(config_value(config, "CONFIG_HZ"), Some("250"));
        assert_eq!(config_value(config, "CONFIG_HOTPLUG_PARALLEL"), Some("y"));
        assert_eq!(config_value(config, "CONFIG_SMP"), None);
    }
}
