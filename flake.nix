# edgebot: a Telegram bot in one static binary.
#
#   nix build                    # packages.default: the binary (glibc, dynamic)
#   nix build .#static           # packages.static: fully static (musl), copy anywhere
#   nix develop                  # toolchain, cargo-nextest, cargo-fuzz
#   nix flake check              # builds, runs the tests, evaluates the NixOS module
#
# NixOS:
#   imports = [ edgebot.nixosModules.default ];
#   services.edgebot = {
#     enable = true;
#     environmentFile = "/run/secrets/edgebot.env";   # EDGEBOT_TOKEN=…, not in the store
#     settings.telegram.poll_timeout_secs = 30;       # rendered to edgebot.toml
#   };
{
  description = "edgebot: a Telegram bot in one static binary";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      cargoToml = lib.importTOML ./Cargo.toml;

      # Only what cargo reads: edits to deploy/ or docs do not rebuild the binary.
      src = lib.fileset.toSource {
        root = ./.;
        fileset = lib.fileset.unions (
          [
            ./Cargo.toml
            ./Cargo.lock
            ./build.rs
            ./src
            # include_str!'d by src/config.rs for `edgebot init`.
            ./edgebot.example.toml
          ]
          # Whatever of these exists: cargo reads declared benches and tests, and the
          # embedded-models feature compiles models/ in.
          ++ lib.filter lib.pathExists [
            ./.cargo
            ./benches
            ./tests
            ./models
            ./README.md
          ]
        );
      };

      # One recipe for both variants; `pkgs` decides the libc and the linking.
      edgebotFor =
        {
          pkgs,
          doCheck ? true,
        }:
        pkgs.rustPlatform.buildRustPackage {
          pname = cargoToml.package.name;
          inherit (cargoToml.package) version;
          inherit src doCheck;
          cargoLock.lockFile = ./Cargo.lock;

          # The same profile as the release artifact: fat LTO, one codegen unit,
          # panic=abort. Tests build in the quicker dev profile.
          buildType = "dist";
          checkType = "debug";

          # No .git in the store: build.rs takes the commit from here instead.
          env.EDGEBOT_GIT_COMMIT = self.shortRev or self.dirtyShortRev or "unknown";

          meta = {
            description = cargoToml.package.description;
            license = [
              lib.licenses.mit
              lib.licenses.asl20
            ];
            mainProgram = "edgebot";
            platforms = lib.platforms.linux;
          };
        };

      # The service's shape, shared by the module and its documentation below.
      hardening = {
        DynamicUser = true;
        UMask = "0077";
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateMounts = true;
        DevicePolicy = "closed";
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RemoveIPC = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        ProcSubset = "pid";
        RestrictNamespaces = true;
        RestrictRealtime = true;
        PrivateUsers = true;
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged @resources"
        ];
        SystemCallErrorNumber = "EPERM";
      };
    in
    {
      packages = forAllSystems (pkgs: {
        default = edgebotFor { inherit pkgs; };
        # musl, linked statically by nixpkgs' static stdenv. The binary brings its own
        # allocator (mimalloc) and DNS resolver, so musl's are never on the hot path.
        # The tests already ran for `default`.
        static = edgebotFor {
          pkgs = pkgs.pkgsStatic;
          doCheck = false;
        };
      });

      nixosModules.default =
        {
          config,
          lib,
          pkgs,
          ...
        }:
        let
          cfg = config.services.edgebot;
          settingsFormat = pkgs.formats.toml { };
          configFile = settingsFormat.generate "edgebot.toml" cfg.settings;
          edgebot = lib.getExe cfg.package;
          # Same arguments for `serve` and the health check, so both read one config.
          globalArgs = "--config ${configFile} --data-dir \${STATE_DIRECTORY}";
          waitHealthy = pkgs.writeShellScript "edgebot-wait-healthy" ''
            for _ in $(seq 1 30); do
              ${edgebot} --config ${configFile} --data-dir "$STATE_DIRECTORY" health && exit 0
              sleep 1
            done
            echo "edgebot: /health did not answer within 30 s" >&2
            exit 1
          '';
        in
        {
          options.services.edgebot = {
            enable = lib.mkEnableOption "edgebot, a Telegram bot in one static binary";

            package = lib.mkOption {
              type = lib.types.package;
              default = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
              defaultText = lib.literalExpression "edgebot.packages.\${system}.default";
              description = "The edgebot package to run.";
            };

            settings = lib.mkOption {
              inherit (settingsFormat) type;
              default = { };
              example = lib.literalExpression ''
                {
                  telegram.listen = "127.0.0.1:8443";
                  admin.listen = "127.0.0.1:9090";
                }
              '';
              description = ''
                edgebot.toml as Nix values (see `edgebot init` for every key). It lands in
                the world-readable Nix store: put secrets in {option}`environmentFile`.
              '';
            };

            environmentFile = lib.mkOption {
              type = lib.types.nullOr lib.types.str;
              default = null;
              example = "/run/secrets/edgebot.env";
              description = ''
                File of `VAR=value` lines read by systemd before the service starts:
                `EDGEBOT_TOKEN` and, as needed, `EDGEBOT_WEBHOOK_SECRET`,
                `EDGEBOT_ADMIN_TOKEN`. A string, not a path, so that it never gets copied
                into the Nix store.
              '';
            };

            environment = lib.mkOption {
              type = lib.types.attrsOf lib.types.str;
              default = { };
              example = {
                EDGEBOT_LOG = "info,edgebot=debug";
              };
              description = "Non-secret `EDGEBOT_*` variables; they override {option}`settings`.";
            };

            stateDirectory = lib.mkOption {
              type = lib.types.str;
              default = "edgebot";
              description = ''
                Name of the state directory under /var/lib, which holds edgebot.redb.
                With DynamicUser it is really /var/lib/private/<name>.
              '';
            };

            memoryMax = lib.mkOption {
              type = lib.types.str;
              default = "512M";
              description = "Hard memory limit of the service (systemd MemoryMax=).";
            };
          };

          config = lib.mkIf cfg.enable {
            systemd.services.edgebot = {
              description = "edgebot Telegram bot";
              wantedBy = [ "multi-user.target" ];
              wants = [ "network-online.target" ];
              after = [ "network-online.target" ];
              startLimitIntervalSec = 0;
              environment = {
                EDGEBOT_LOG = lib.mkDefault "info";
              }
              // cfg.environment;
              serviceConfig = hardening // {
                Type = "exec";
                ExecStart = "${edgebot} ${globalArgs} serve";
                # See deploy/edgebot.service for why a start-time liveness check.
                ExecStartPost = waitHealthy;
                EnvironmentFile = lib.optional (cfg.environmentFile != null) cfg.environmentFile;
                StateDirectory = cfg.stateDirectory;
                StateDirectoryMode = "0700";
                Restart = "on-failure";
                RestartSec = "5s";
                KillSignal = "SIGTERM";
                TimeoutStopSec = "15s";
                MemoryHigh = "384M";
                MemoryMax = cfg.memoryMax;
                TasksMax = 256;
                LimitNOFILE = 65536;
              };
            };
          };
        };

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.rust-analyzer
            pkgs.cargo-nextest
            # cargo-fuzz drives libFuzzer through nightly-only flags: run it with a
            # nightly toolchain, e.g. `RUSTC_BOOTSTRAP=1 cargo fuzz run …`.
            pkgs.cargo-fuzz
            pkgs.file
          ];
          RUST_SRC_PATH = "${pkgs.rustPlatform.rustLibSrc}";
        };
      });

      checks = forAllSystems (
        pkgs:
        let
          system = pkgs.stdenv.hostPlatform.system;
          # A whole NixOS system with the module on; only its unit file is built, so
          # the check proves the module evaluates and renders, not that it boots.
          nixos = lib.nixosSystem {
            modules = [
              self.nixosModules.default
              {
                nixpkgs.hostPlatform = system;
                boot.isContainer = true;
                system.stateVersion = "25.11";
                services.edgebot = {
                  enable = true;
                  environmentFile = "/run/secrets/edgebot.env";
                  settings.telegram.listen = "127.0.0.1:8443";
                };
              }
            ];
          };
        in
        {
          build = self.packages.${system}.default;
          module = pkgs.runCommand "edgebot-module-check" { } ''
            unit=${nixos.config.systemd.units."edgebot.service".unit}/edgebot.service
            grep -q '^DynamicUser=true' "$unit"
            grep -q '^ExecStart=.*/bin/edgebot --config .* serve' "$unit"
            grep -q '^EnvironmentFile=/run/secrets/edgebot.env' "$unit"
            cp "$unit" "$out"
          '';
        }
      );
    };
}
