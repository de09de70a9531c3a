fn main() -> std::process::ExitCode {
    tinylm::cli::main()
}
