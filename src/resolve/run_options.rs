//! The engine options of a run that no Task API file carries — `--shm-size`, `--gpus`,
//! `--publish`, `--engine-arg` — as typed values: parsed once from the command line (or a
//! `RunRequest`), carried by the plan, rendered by each backend (DESIGN.md decision 13,
//! "Engine options beyond the task").

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::quantity;

/// What the command line asks of the engine beyond the task. Empty for most runs, and then
/// left out of records, so older records and plans read the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct EngineOptions {
    /// `/dev/shm` size in bytes (`--shm-size`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size_bytes: Option<u64>,
    /// `--gpus`: wins over the task's `resources.limits` GPU count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<GpuRequest>,
    /// `--publish`, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PublishedPort>,
    /// `--engine-arg`, verbatim, in order (checked by `backend::engine_args`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub engine_args: Vec<String>,
}

impl EngineOptions {
    pub(crate) fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Which GPUs a run gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum GpuRequest {
    /// Every GPU of the host.
    All,
    /// This many (the first ones, or those a scheduler selected).
    Count(u64),
    /// These devices, by index or UUID, as the host numbers them.
    Devices(Vec<String>),
}

impl fmt::Display for GpuRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuRequest::All => f.write_str("all"),
            GpuRequest::Count(n) => write!(f, "{n}"),
            GpuRequest::Devices(devices) => write!(f, "device={}", devices.join(",")),
        }
    }
}

/// Reads `all`, a count `N` (at least 1) or `device=0,1` (indexes or UUIDs; Docker's
/// quoted form `"device=0,1"` too).
pub(crate) fn parse_gpus(text: &str) -> Result<GpuRequest, String> {
    let fix = "write `all`, a number of GPUs such as `2`, or devices such as `device=0,1`";
    let text = text.trim();
    if text == "all" {
        return Ok(GpuRequest::All);
    }
    if let Ok(count) = text.parse::<u64>() {
        return match count {
            0 => Err(format!(
                "`0` GPUs asks for none; leave --gpus out\n  fix: {fix}"
            )),
            n => Ok(GpuRequest::Count(n)),
        };
    }
    let unquoted = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if let Some(list) = unquoted.strip_prefix("device=") {
        let devices: Vec<String> = list.split(',').map(|d| d.trim().to_string()).collect();
        let well_formed = |d: &String| {
            !d.is_empty()
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
        };
        if devices.iter().all(well_formed) {
            return Ok(GpuRequest::Devices(devices));
        }
        return Err(format!(
            "`{text}` names a device that is empty or not an index or UUID\n  fix: {fix}"
        ));
    }
    Err(format!("`{text}` is not a GPU selection\n  fix: {fix}"))
}

/// Reads a `/dev/shm` size: a Kubernetes byte quantity (`1Gi`, `512Mi`, plain bytes).
pub(crate) fn parse_shm_size(text: &str) -> Result<u64, String> {
    match quantity::parse_bytes(text) {
        Ok(0) => Err("a /dev/shm of 0 bytes cannot hold anything\n  fix: e.g. `1Gi`".into()),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(format!("{}\n  fix: {}", e.message, e.fix)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Protocol {
    #[default]
    Tcp,
    Udp,
}

/// A container port published on the host. Without an address it is bound to 127.0.0.1
/// only: a development UI must not be open to the network by accident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PublishedPort {
    /// The host address written by the user; `None` means loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// `None`: the engine picks a free port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Protocol,
}

/// Where a port is published when no address is written.
pub(crate) const DEFAULT_PUBLISH_ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

impl PublishedPort {
    /// The host address the port is bound to.
    pub(crate) fn host_address(&self) -> IpAddr {
        self.address.unwrap_or(DEFAULT_PUBLISH_ADDRESS)
    }

    /// Docker's `-p` value: `ADDR:[HOST]:CONTAINER/PROTO`, the address always written.
    pub(crate) fn docker_spec(&self) -> String {
        let address = match self.host_address() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let host = self.host_port.map(|p| p.to_string()).unwrap_or_default();
        format!("{address}:{host}:{}/{}", self.container_port, self.protocol)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// The `--publish` text that reads back as the same value.
impl fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            Some(IpAddr::V4(v4)) => write!(f, "{v4}:")?,
            Some(IpAddr::V6(v6)) => write!(f, "[{v6}]:")?,
            None => {}
        }
        if self.address.is_some() || self.host_port.is_some() {
            if let Some(port) = self.host_port {
                write!(f, "{port}")?;
            }
            f.write_str(":")?;
        }
        write!(f, "{}", self.container_port)?;
        if self.protocol == Protocol::Udp {
            f.write_str("/udp")?;
        }
        Ok(())
    }
}

/// Reads `[[ADDRESS:]HOST_PORT:]CONTAINER_PORT[/tcp|/udp]`. ADDRESS is an IP address
/// (IPv6 in brackets); `ADDRESS::CONTAINER_PORT` lets the engine choose the host port.
pub(crate) fn parse_publish(text: &str) -> Result<PublishedPort, String> {
    let fix = "write CONTAINER_PORT, HOST_PORT:CONTAINER_PORT or ADDRESS:HOST_PORT:CONTAINER_PORT, e.g. `5000`, `8080:5000` or `127.0.0.1:8080:5000`";
    let bad = |why: String| format!("--publish `{text}`: {why}\n  fix: {fix}");
    let (rest, protocol) = match text.rsplit_once('/') {
        Some((rest, "tcp")) => (rest, Protocol::Tcp),
        Some((rest, "udp")) => (rest, Protocol::Udp),
        Some((_, other)) => return Err(bad(format!("`{other}` is not tcp or udp"))),
        None => (text, Protocol::Tcp),
    };
    // An IPv6 address is in brackets, so it is split off before the colons are counted.
    let (address, ports) = if let Some(bracketed) = rest.strip_prefix('[') {
        let Some((address, ports)) = bracketed.split_once("]:") else {
            return Err(bad("an IPv6 address needs `]:` after it".into()));
        };
        (Some(address), ports)
    } else {
        match rest.matches(':').count() {
            0 | 1 => (None, rest),
            _ => {
                let (address, ports) = rest.split_once(':').unwrap_or_default();
                (Some(address), ports)
            }
        }
    };
    let address = match address {
        None => None,
        Some(text) => Some(
            text.parse::<IpAddr>()
                .map_err(|_| bad(format!("`{text}` is not an IP address")))?,
        ),
    };
    let port = |text: &str, what: &str| match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad(format!("`{text}` is not a {what} port (1-65535)"))),
        Ok(port) => Ok(port),
    };
    let (host_port, container_port) = match ports.split_once(':') {
        None if address.is_some() => return Err(bad("the host port is missing".into())),
        None => (None, port(ports, "container")?),
        Some(("", container)) if address.is_some() => (None, port(container, "container")?),
        Some((host, container)) => (Some(port(host, "host")?), port(container, "container")?),
    };
    Ok(PublishedPort {
        address,
        host_port,
        container_port,
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_default_to_loopback_and_read_back_as_written() {
        let p = parse_publish("5000").expect("port");
        assert_eq!(p.host_address().to_string(), "127.0.0.1");
        assert_eq!(p.docker_spec(), "127.0.0.1::5000/tcp");
        let p = parse_publish("8080:5000").expect("port");
        assert_eq!(p.docker_spec(), "127.0.0.1:8080:5000/tcp");
        let p = parse_publish("0.0.0.0:8080:5000/udp").expect("port");
        assert_eq!(p.docker_spec(), "0.0.0.0:8080:5000/udp");
        let p = parse_publish("[::1]::5000").expect("port");
        assert_eq!(p.docker_spec(), "[::1]::5000/tcp");
        for text in [
            "5000",
            "8080:5000",
            "0.0.0.0:8080:5000/udp",
            "[::1]::5000",
            "127.0.0.2:1:2",
            "127.0.0.1::5000",
        ] {
            let p = parse_publish(text).expect(text);
            assert_eq!(parse_publish(&p.to_string()).as_ref(), Ok(&p), "{text}");
        }
        for bad in [
            "",
            "0",
            "70000",
            "a:1",
            "1.2.3.4:5000",
            "host:1:2",
            "1:2:3:4",
            "5000/sctp",
            "[::1]5000",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn gpu_requests_read_docker_forms() {
        assert_eq!(parse_gpus("all"), Ok(GpuRequest::All));
        assert_eq!(parse_gpus("2"), Ok(GpuRequest::Count(2)));
        assert_eq!(
            parse_gpus("\"device=0,GPU-3a2b\""),
            Ok(GpuRequest::Devices(vec!["0".into(), "GPU-3a2b".into()]))
        );
        for text in ["all", "2", "device=0,1"] {
            let gpus = parse_gpus(text).expect(text);
            assert_eq!(gpus.to_string(), text);
        }
        for bad in ["0", "device=", "device=0,,1", "many", "device=0;rm"] {
            assert!(parse_gpus(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn shm_sizes_are_byte_quantities() {
        assert_eq!(parse_shm_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_shm_size("67108864"), Ok(64 << 20));
        assert!(parse_shm_size("0").is_err());
        assert!(parse_shm_size("1GB").is_err());
    }
}
