//! The control plane's keys: a CA, the API server's serving certificate (valid for every
//! address it is reached at), and the ServiceAccount token signing key pair.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::error::ClusterError;

/// The files written by [`write`](fn@write).
#[derive(Clone, Debug)]
pub struct PkiFiles {
    /// The CA certificate clients trust (kubeconfigs, pods' `ca.crt`).
    pub ca_cert: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    /// Signs ServiceAccount tokens (`--service-account-signing-key-file`).
    pub service_account_key: PathBuf,
    /// Verifies them (`--service-account-key-file`).
    pub service_account_public_key: PathBuf,
}

/// Generates the CA, a serving certificate for `names` (DNS names and IP addresses) and the
/// ServiceAccount key pair into `dir`.
pub fn write(dir: &Path, names: &[String]) -> Result<PkiFiles, ClusterError> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "kube-vrrp lab CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(names.to_vec())?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;

    let service_account = KeyPair::generate()?;

    let files = PkiFiles {
        ca_cert: dir.join("ca.crt"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        service_account_key: dir.join("sa.key"),
        service_account_public_key: dir.join("sa.pub"),
    };
    for (path, text) in [
        (&files.ca_cert, ca_cert.pem()),
        (&files.serving_cert, serving_cert.pem()),
        (&files.serving_key, serving_key.serialize_pem()),
        (&files.service_account_key, service_account.serialize_pem()),
        (
            &files.service_account_public_key,
            service_account.public_key_pem(),
        ),
    ] {
        std::fs::write(path, text)
            .map_err(ClusterError::io(format!("write {}", path.display())))?;
    }
    Ok(files)
}

/// The names a serving certificate for an API server reached at `addresses` must carry: those
/// addresses, loopback (the host's forwarder) and the in-cluster DNS names.
pub fn apiserver_names(addresses: &[IpAddr]) -> Vec<String> {
    let mut names: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    names.extend(
        [
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(str::to_owned),
    );
    names
}
