//! `--ulimit NAME=SOFT[:HARD]`: setrlimit(2) in the container's process.

use ch01_process::{Ctx, Error, Result};

/// One `--ulimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

/// The resources docker's `--ulimit` names, with setrlimit(2)'s constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    pub name: &'static str,
    pub id: libc::__rlimit_resource_t,
}

const RESOURCES: &[Resource] = &[
    Resource {
        name: "core",
        id: libc::RLIMIT_CORE,
    },
    Resource {
        name: "cpu",
        id: libc::RLIMIT_CPU,
    },
    Resource {
        name: "data",
        id: libc::RLIMIT_DATA,
    },
    Resource {
        name: "fsize",
        id: libc::RLIMIT_FSIZE,
    },
    Resource {
        name: "locks",
        id: libc::RLIMIT_LOCKS,
    },
    Resource {
        name: "memlock",
        id: libc::RLIMIT_MEMLOCK,
    },
    Resource {
        name: "msgqueue",
        id: libc::RLIMIT_MSGQUEUE,
    },
    Resource {
        name: "nice",
        id: libc::RLIMIT_NICE,
    },
    Resource {
        name: "nofile",
        id: libc::RLIMIT_NOFILE,
    },
    Resource {
        name: "nproc",
        id: libc::RLIMIT_NPROC,
    },
    Resource {
        name: "rss",
        id: libc::RLIMIT_RSS,
    },
    Resource {
        name: "rtprio",
        id: libc::RLIMIT_RTPRIO,
    },
    Resource {
        name: "rttime",
        id: libc::RLIMIT_RTTIME,
    },
    Resource {
        name: "sigpending",
        id: libc::RLIMIT_SIGPENDING,
    },
    Resource {
        name: "stack",
        id: libc::RLIMIT_STACK,
    },
];

/// `NAME=SOFT[:HARD]`, docker's syntax: a number, or `unlimited` (also -1);
/// without HARD the hard limit is SOFT.
pub fn parse(arg: &str) -> std::result::Result<Ulimit, String> {
    let (name, values) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?}: expected NAME=SOFT[:HARD], e.g. nofile=1024:2048"))?;
    let resource = RESOURCES
        .iter()
        .find(|r| r.name == name)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = RESOURCES.iter().map(|r| r.name).collect();
            format!(
                "{name:?} is not a limit; the limits are {}",
                names.join(", ")
            )
        })?;
    let value = |v: &str| -> std::result::Result<u64, String> {
        match v {
            "unlimited" | "-1" => Ok(libc::RLIM_INFINITY),
            v => v
                .parse::<u64>()
                .ok()
                .filter(|n| *n != libc::RLIM_INFINITY)
                .ok_or_else(|| format!("{name}: {v:?} is not a number (or unlimited)")),
        }
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (value(s)?, value(h)?),
        None => (value(values)?, value(values)?),
    };
    if soft > hard {
        return Err(format!(
            "{name}: the soft limit {} is above the hard limit {}",
            show(soft),
            show(hard)
        ));
    }
    Ok(Ulimit {
        resource,
        soft,
        hard,
    })
}

fn show(v: u64) -> String {
    match v {
        libc::RLIM_INFINITY => "unlimited".into(),
        v => v.to_string(),
    }
}

/// setrlimit(2) each limit, in the container's process, before its
/// capabilities go: raising a hard limit needs CAP_SYS_RESOURCE.
pub fn apply(ctx: &Ctx, limits: &[Ulimit]) -> Result<()> {
    for l in limits {
        let name = l.resource.name;
        ctx.say(format_args!(
            "setrlimit(2) {name} {}:{}",
            show(l.soft),
            show(l.hard)
        ));
        let want = libc::rlimit {
            rlim_cur: l.soft,
            rlim_max: l.hard,
        };
        // SAFETY: `want` is a valid rlimit, read by the kernel only.
        if unsafe { libc::setrlimit(l.resource.id, &want) } == 0 {
            continue;
        }
        let errno = nix::errno::Errno::last();
        // SAFETY: an all-zero rlimit is valid; the kernel writes into it.
        let mut now: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: `now` is a valid rlimit to write.
        unsafe { libc::getrlimit(l.resource.id, &mut now) };
        return Err(Error::runtime(match errno {
            nix::errno::Errno::EPERM => format!(
                "--ulimit {name}={}:{}: the hard limit is {} here, and raising it needs \
                 CAP_SYS_RESOURCE, which this runtime does not have; ask for at most {}",
                show(l.soft),
                show(l.hard),
                show(now.rlim_max),
                show(now.rlim_max)
            ),
            e => format!(
                "setrlimit(2) {name} {}:{}: {}",
                show(l.soft),
                show(l.hard),
                ch01_process::error::describe(e)
            ),
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_parse_as_docker_spells_them() {
        let l = parse("nofile=1024:2048").unwrap();
        assert_eq!((l.resource.name, l.soft, l.hard), ("nofile", 1024, 2048));
        let l = parse("nproc=64").unwrap();
        assert_eq!((l.soft, l.hard), (64, 64));
        let l = parse("core=0:unlimited").unwrap();
        assert_eq!((l.soft, l.hard), (0, libc::RLIM_INFINITY));
        assert_eq!(parse("stack=-1").unwrap().soft, libc::RLIM_INFINITY);
        for bad in [
            "nofile",
            "files=1",
            "nofile=x",
            "nofile=2048:1024",
            "nofile=1:2:3",
            "=1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("files=1").unwrap_err().contains("nofile"));
    }
}
