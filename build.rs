//! Generates the gRPC code for `proto/tribune.proto` with the vendored protoc: no system protoc
//! and no environment mutation.
//!
//! It also decides whether the openGauss end-to-end tests run: they need openGauss's programs,
//! named by `TRIBUNE_OPENGAUSS_BIN` when the tests are built (cfg `tribune_opengauss`); built
//! without it, they are compiled as ignored tests that say what they need, so a test run never
//! counts them as passed. The PostgreSQL major-version upgrade test does the same with
//! `TRIBUNE_PG_UPGRADE_BIN` (cfg `tribune_pg_upgrade`), and the backup tests with
//! `TRIBUNE_PGBACKREST` (cfg `tribune_pgbackrest`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/tribune.proto");
    println!("cargo::rustc-check-cfg=cfg(tribune_opengauss)");
    println!("cargo:rerun-if-env-changed=TRIBUNE_OPENGAUSS_BIN");
    if std::env::var_os("TRIBUNE_OPENGAUSS_BIN").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=tribune_opengauss");
    }
    // The major-version upgrade test needs a newer PostgreSQL than the one the suite runs
    // (`TRIBUNE_PG_UPGRADE_BIN`, PostgreSQL 18 in scripts/test.sh); without it, it is ignored.
    println!("cargo::rustc-check-cfg=cfg(tribune_pg_upgrade)");
    println!("cargo:rerun-if-env-changed=TRIBUNE_PG_UPGRADE_BIN");
    if std::env::var_os("TRIBUNE_PG_UPGRADE_BIN").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=tribune_pg_upgrade");
    }
    // Tests that need root (nftables partitions, the agent's refusal to run as root) run when
    // built with `TRIBUNE_ROOT_TESTS` (scripts/test.sh sets it as root); otherwise ignored.
    println!("cargo::rustc-check-cfg=cfg(tribune_root_tests)");
    println!("cargo:rerun-if-env-changed=TRIBUNE_ROOT_TESTS");
    if std::env::var_os("TRIBUNE_ROOT_TESTS").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=tribune_root_tests");
    }
    // The backup tests (replicas and restores from pgBackRest) need pgbackrest, named by
    // `TRIBUNE_PGBACKREST` (scripts/test.sh sets it once scripts/setup.sh installed it).
    println!("cargo::rustc-check-cfg=cfg(tribune_pgbackrest)");
    println!("cargo:rerun-if-env-changed=TRIBUNE_PGBACKREST");
    if std::env::var_os("TRIBUNE_PGBACKREST").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=tribune_pgbackrest");
    }
    let mut cfg = prost_build::Config::new();
    cfg.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        cfg,
        &["proto/tribune.proto"],
        &["proto"],
    )?;
    Ok(())
}
