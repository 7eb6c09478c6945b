//! What the report says about every script a configuration runs (track scripts and
//! `MISC_CHECK`): the path is kept as written, and the agent runs scripts only from the host
//! directories it is started with (`--script-dir`), so the user must put them there.

/// What to do about a script.
pub const ADVICE: &str = "keep the script in a root-owned directory that only root can write \
    (what keepalived's enable_script_security checked) and start the agent with --script-dir \
    naming it (in a cluster: the chart's agent.scriptDirectory, mounted read-only into the \
    agent's pod at the same path)";

/// The report line for `owner` running `command`.
pub fn message(owner: &str, command: &[String]) -> String {
    let program = command.first().map_or("", String::as_str);
    let relative = if program.starts_with('/') {
        ""
    } else {
        " (a relative path: it is looked up in the agent's PATH)"
    };
    format!(
        "{owner} runs {program}{relative}; the agent runs scripts only from the directories \
         given with --script-dir and refuses a VirtualIP or VirtualServer naming one elsewhere"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_program_and_flags_relative_paths() {
        let m = message(
            "vrrp_script chk",
            &["/usr/local/bin/chk".into(), "-q".into()],
        );
        assert!(
            m.starts_with("vrrp_script chk runs /usr/local/bin/chk; "),
            "{m}"
        );
        assert!(message("x", &["pgrep".into()]).contains("a relative path"));
    }
}
