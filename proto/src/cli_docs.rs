//! Man pages and shell completions, generated from each binary's own flags (so they never
//! disagree with `--help`): `sg-node --generate man`, `sg-client --generate bash`,
//! `sgctl --generate zsh`, ... on stdout.

use clap_complete::Shell;
use std::io::Write;

/// What `--generate` accepts.
pub const WHAT: &str = "man, bash, zsh, fish, elvish or powershell";

/// `--generate WHAT` for the binary `cmd` describes: the exit status to end with, or `None`
/// when it was not asked for (the binary runs as usual).
pub fn answer(cmd: clap::Command, what: Option<&str>) -> Option<std::process::ExitCode> {
    let what = what?;
    let name = cmd.get_name().to_string();
    Some(match generate(cmd, what) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::from(2)
        }
    })
}

/// The start both binaries share: answer `--generate` for `A`'s flags, else turn the parsed
/// flags into a configuration. `Err` is the status to exit with now: the generator's, or 2
/// with the reason on stderr when the configuration is wrong (a service manager does not
/// restart on 2: see `RestartPreventExitStatus` in deploy/systemd).
pub fn configure<A, C, E>(
    args: A,
    generate: Option<&str>,
    into_config: impl FnOnce(A) -> Result<C, E>,
) -> Result<C, std::process::ExitCode>
where
    A: clap::CommandFactory,
    E: std::fmt::Display,
{
    let cmd = A::command();
    let name = cmd.get_name().to_string();
    if let Some(code) = answer(cmd, generate) {
        return Err(code);
    }
    into_config(args).map_err(|e| {
        eprintln!("{name}: {e}");
        std::process::ExitCode::from(2)
    })
}

/// Writes the man page (roff) or the completion script `what` names for `cmd` to stdout.
pub fn generate(mut cmd: clap::Command, what: &str) -> Result<(), String> {
    let name = cmd.get_name().to_string();
    let mut out = std::io::stdout().lock();
    if what == "man" {
        return clap_mangen::Man::new(cmd)
            .render(&mut out)
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write the man page: {e}"));
    }
    let shell: Shell = what
        .parse()
        .map_err(|_| format!("--generate {what:?}: use {WHAT}"))?;
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out.flush().map_err(|e| format!("cannot write: {e}"))
}
