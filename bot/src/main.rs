//! `elevate`: see `elevate --help`.

#[tokio::main]
async fn main() {
    elevate_bot::install_crypto();
    elevate_bot::init_logging();
    std::process::exit(elevate_bot::cli::run().await);
}
