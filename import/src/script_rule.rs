//! What the report says about every script a configuration runs (track scripts and
//! `MISC_CHECK`): the path is kept as written, and the design's rule that scripts run only from
//! an allow-listed host directory is not enforced by the agent yet, so the user must see to it.

/// What to do about a script.
pub const ADVICE: &str = "keep the script in a root-owned directory that only root can write \
    (what keepalived's enable_script_security checked); in a cluster, mount that directory \
    read-only into the agent's pod at the same path";

/// The report line for `owner` running `command`.
pub fn message(owner: &str, command: &[String]) -> String {
    let program = command.first().map_or("", String::as_str);
    let relative = if program.starts_with('/') {
        ""
    } else {
        " (a relative path: it is looked up in the agent's PATH)"
    };
    format!(
        "{owner} runs {program}{relative}; kube-vrrp is to run scripts only from an allow-listed \
         host directory, a rule the agent does not enforce yet, so it runs this path as written"
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
