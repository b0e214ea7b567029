//! `weft-cni`: the CNI plugin binary. Reads `CNI_*` from the environment
//! and the configuration from stdin, prints the result (or a spec-shaped
//! error, exit status 1) on stdout. See the library docs.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;

use weft_cni::spec::{CniError, Request, code};
use weft_cni::{plugin, timing};

fn main() -> ExitCode {
    timing::init();
    let env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CNI_"))
        .collect();
    let mut stdin = Vec::new();
    let read = if env.get("CNI_COMMAND").map(String::as_str) == Some("VERSION") {
        // VERSION may be run with nothing (or a closed terminal) on stdin.
        std::io::stdin().read_to_end(&mut stdin).or(Ok(0))
    } else {
        std::io::stdin().read_to_end(&mut stdin)
    };
    let outcome = match read {
        Err(e) => Err((
            CniError::new(code::IO_FAILURE, format!("reading stdin: {e}")),
            Request::error_version(&stdin),
        )),
        Ok(_) => match Request::from_env(&env, &stdin) {
            Err(e) => Err((e, Request::error_version(&stdin))),
            Ok(req) => {
                timing::mark("config");
                plugin::run(&req).map_err(|e| (e, req.version.clone()))
            }
        },
    };
    let mut out = std::io::stdout().lock();
    let status = match outcome {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(v)) => {
            let _ = writeln!(out, "{v}");
            ExitCode::SUCCESS
        }
        Err((e, version)) => {
            let _ = writeln!(out, "{}", e.to_json(&version));
            eprintln!("weft-cni: {e}");
            ExitCode::FAILURE
        }
    };
    timing::mark("output");
    timing::report(env.get("CNI_COMMAND").map_or("?", String::as_str));
    status
}
