//! Man pages and shell completions, generated from the command-line definition itself so that
//! they can never drift from what `bedrud --help` says. The packages ship what this writes.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Sections of `bedrud(1)` that clap cannot know: files, environment, exit status, see also.
const MAIN_PAGE_EXTRA: &str = r#".SH FILES
.TP
\fI/etc/bedrud/config.yaml\fR
The configuration (mode 0640, owner root, group bedrud). Every key is documented in it and
shown with its default. Check it with \fBbedrud config check\fR.
.TP
\fI/var/lib/bedrud/\fR
State: the SQLite database \fIbedrud.db\fR, and the secrets generated on this host when the
configuration sets none: \fIlivekit-keys.yaml\fR (LiveKit API key pair) and \fIjwt-secret\fR
(signs bedrud's access tokens). Files are mode 0600, owned by the bedrud user.
.TP
\fI/usr/lib/bedrud/livekit-server\fR
The LiveKit media server that embedded mode runs and supervises.
.TP
\fI/usr/lib/systemd/system/bedrud.service\fR
The systemd unit. Ports below 1024 need a drop-in; see
\fI/usr/share/doc/bedrud/examples/low-port.conf\fR.
.SH ENVIRONMENT
.TP
\fBBEDRUD_CONFIG\fR
Configuration file, when \fB\-\-config\fR is not given (the unit sets /etc/bedrud/config.yaml).
.TP
\fBBEDRUD_LOG\fR
Log level or filter, overriding \fBlog.level\fR (for example "info,livekit=warn").
.TP
\fBSTATE_DIRECTORY\fR
Set by systemd (StateDirectory=); used as the data folder when \fBserver.dataDir\fR is left at
its default.
.TP
\fBLIVEKIT_CONFIG_PATH\fR
A static LiveKit YAML to run unchanged instead of a generated one.
.SH EXIT STATUS
0 on success; 1 when a command fails, when \fBconfig check\fR finds a problem, or when
\fBdoctor\fR reports a FAIL. \fBserve\fR exits 0 after SIGTERM once LiveKit has stopped.
.SH EXAMPLES
.nf
systemctl status bedrud
journalctl \-u bedrud \-f
bedrud config check
bedrud doctor
echo "$PASSWORD" | bedrud user create\-admin \-\-email admin@example.org
.fi
.SH SEE ALSO
\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBsystemd.exec\fR(5),
\fI/usr/share/doc/bedrud/README.md\fR
"#;

/// Writes `bedrud.1` and one page per subcommand (`bedrud-serve.1`, `bedrud-config-check.1`…)
/// into `dir`, and returns the paths written.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_subcommand_pages(&cmd, dir, &mut written)?;
    let main = dir.join("bedrud.1");
    std::fs::write(&main, main_page(&cmd)?)?;
    written.push(main);
    Ok(written)
}

fn write_subcommand_pages(
    cmd: &clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_subcommand_pages(sub, dir, written)?;
        written.push(clap_mangen::Man::new(sub.clone()).generate_to(dir)?);
    }
    Ok(())
}

fn main_page(cmd: &clap::Command) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    out.write_all(MAIN_PAGE_EXTRA.as_bytes())?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// The completion script for `shell`, as bash, zsh or fish load it.
pub fn completions(mut cmd: clap::Command, shell: Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut cmd, "bedrud", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> clap::Command {
        crate::cli::command()
    }

    #[test]
    fn one_page_per_subcommand_and_a_main_page_with_files_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_man_pages(cli(), dir.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "bedrud.1",
            "bedrud-serve.1",
            "bedrud-config-check.1",
            "bedrud-secrets-init.1",
        ] {
            assert!(
                names.contains(&want.to_string()),
                "{want} missing from {names:?}"
            );
        }
        let main = std::fs::read_to_string(dir.path().join("bedrud.1")).unwrap();
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH FILES",
            ".SH ENVIRONMENT",
            ".SH EXIT STATUS",
        ] {
            assert!(main.contains(section), "bedrud.1 lacks {section}");
        }
    }

    #[test]
    fn completions_name_the_subcommands() {
        let mut out = Vec::new();
        completions(cli(), Shell::Bash, &mut out);
        let script = String::from_utf8(out).unwrap();
        for word in ["serve", "check", "doctor", "--config"] {
            assert!(script.contains(word), "no {word} in the bash completions");
        }
    }
}
