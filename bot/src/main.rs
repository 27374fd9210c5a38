//! `elevate`: see `elevate --help`.

#[tokio::main]
async fn main() {
    // reqwest is built without a TLS crypto provider of its own; chat clients bring ring.
    // Installing it first avoids two providers fighting at the first HTTPS call.
    let _ = rustls::crypto::ring::default_provider().install_default();
    elevate_bot::init_logging();
    std::process::exit(elevate_bot::cli::run().await);
}
