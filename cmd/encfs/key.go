package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/spf13/cobra"

	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
)

// newKeyCommand builds `encfs key`, the operator's release-key commands (keyslot.go holds the
// keyslot ones).
func newKeyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage release keys: import into Key Vault with a release policy, print policies, fingerprints",
	}
	cmd.AddCommand(newKeyImportCommand(), newKeyPolicyCommand(), newKeyFingerprintCommand(), newKeyAddSlotCommand(), newKeyRemoveSlotCommand())
	return cmd
}

// policyFlags are the flags that build a release policy.
type policyFlags struct {
	maa        string
	hostData   string
	allowDebug bool
}

func (p *policyFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.maa, "maa", "", "Azure Attestation endpoint the policy trusts, e.g. sharedeus2.eus2.attest.azure.net")
	cmd.Flags().StringVar(&p.hostData, "host-data", "", "SHA-256 of the container group's security policy, 64 hex characters (x-ms-sevsnpvm-hostdata)")
	cmd.Flags().BoolVar(&p.allowDebug, "allow-debug", false, "also release to debuggable guests (never in production)")
}

func (p *policyFlags) build() ([]byte, error) {
	if p.maa == "" || p.hostData == "" {
		return nil, errors.New("--maa and --host-data are required to build a release policy")
	}
	pol, err := keys.NewReleasePolicy(p.maa, p.hostData, p.allowDebug)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(pol, "", "  ")
}

func newKeyPolicyCommand() *cobra.Command {
	var pf policyFlags
	cmd := &cobra.Command{
		Use:   "policy --maa URL --host-data HEX [--allow-debug]",
		Short: "Print the Key Vault release policy for a container policy hash",
		Long: `Print the release policy JSON that releases a key only to a compliant Azure confidential
container group (x-ms-compliance-status azure-compliant-uvm) at VMPL 0, not debuggable, whose
container security policy hashes to --host-data, as attested by --maa.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeyPolicy(&pf, cmd.OutOrStdout())
		},
	}
	pf.register(cmd)
	return cmd
}

// runKeyPolicy prints the release policy the flags describe.
func runKeyPolicy(pf *policyFlags, stdout io.Writer) error {
	b, err := pf.build()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(b))
	return nil
}

// keyImportOptions are the flags of `encfs key import`.
type keyImportOptions struct {
	policy                          policyFlags
	vault, name, keyFile, kty       string
	policyFile, bearerEnv, clientID string
	immutable                       bool
	timeout                         time.Duration
}

func newKeyImportCommand() *cobra.Command {
	opts := &keyImportOptions{}
	cmd := &cobra.Command{
		Use:   "import --vault URL --name NAME --key-file FILE (--policy FILE | --maa URL --host-data HEX)",
		Short: "Import a 32-byte release key into Key Vault or Managed HSM with a release policy",
		Long: `Import a raw 32-byte key file as an exportable key with a release policy, either from
--policy FILE or built from --maa and --host-data as "encfs key policy" prints it. The key type
is oct-HSM by default, for Managed HSM; --kty oct is for a service that accepts a plain
symmetric key. Key Vault itself holds no symmetric keys: use Managed HSM, or an RSA-HSM key with
key_derivation in the sidecar configuration.

Credentials come from azidentity's default chain (environment, workload identity, managed
identity, Azure CLI), or from a token in the environment variable named by --bearer-token-env.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeyImport(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.vault, "vault", "", "Key Vault or Managed HSM, e.g. myhsm.managedhsm.azure.net or https://myvault.vault.azure.net")
	f.StringVar(&opts.name, "name", "", "key name (the kid in the sidecar configuration)")
	f.StringVar(&opts.keyFile, "key-file", "", "raw 32-byte key file (encfs keygen)")
	f.StringVar(&opts.kty, "kty", "oct-HSM", "key type: oct-HSM (Managed HSM) or oct")
	f.StringVar(&opts.policyFile, "policy", "", "release policy JSON file")
	f.BoolVar(&opts.immutable, "immutable", false, "make the release policy immutable (it can never be changed)")
	f.StringVar(&opts.bearerEnv, "bearer-token-env", "", "name of an environment variable holding an AAD access token for the vault")
	f.StringVar(&opts.clientID, "client-id", "", "client id of a user-assigned managed identity")
	f.DurationVar(&opts.timeout, "timeout", time.Minute, "timeout of each request to the vault")
	opts.policy.register(cmd)
	return cmd
}

// runKeyImport imports a key file into Key Vault or Managed HSM with a release policy.
func runKeyImport(ctx context.Context, opts *keyImportOptions, stdout io.Writer) error {
	if opts.vault == "" || opts.name == "" || opts.keyFile == "" {
		return errors.New("--vault, --name and --key-file are required")
	}
	var policy []byte
	var err error
	switch {
	case opts.policyFile != "" && (opts.policy.maa != "" || opts.policy.hostData != ""):
		return errors.New("give either --policy or --maa/--host-data, not both")
	case opts.policyFile != "":
		if policy, err = os.ReadFile(opts.policyFile); err != nil {
			return err
		}
	default:
		if policy, err = opts.policy.build(); err != nil {
			return err
		}
	}
	cred, err := operatorCredential(opts.bearerEnv, opts.clientID)
	if err != nil {
		return err
	}
	key, err := keys.ReadKeyFile(opts.keyFile)
	if err != nil {
		return err
	}
	defer keys.Zero(key)
	vaultURL, err := keys.EndpointURL(opts.vault)
	if err != nil {
		return err
	}
	c, err := keys.NewKeyVaultClient(vaultURL, cred, keys.KeyVaultOptions{TryTimeout: opts.timeout})
	if err != nil {
		return err
	}
	kid, err := keys.ImportKey(ctx, c, keys.ImportParams{Name: opts.name, Key: key, KeyType: opts.kty, Policy: policy, Immutable: opts.immutable})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %s (key fingerprint %s)\n", kid, image.Fingerprint(key))
	return nil
}

// operatorCredential is a token from the named environment variable, a user-assigned managed
// (or workload) identity when clientID is given, or else azidentity's default chain, which covers
// an operator's Azure CLI login as well as managed and workload identity.
func operatorCredential(bearerEnv, clientID string) (azcore.TokenCredential, error) {
	if bearerEnv != "" {
		tok := os.Getenv(bearerEnv)
		if tok == "" {
			return nil, fmt.Errorf("--bearer-token-env: $%s is empty", bearerEnv)
		}
		return keys.NewStaticCredential(tok), nil
	}
	if clientID != "" {
		return keys.NewCredential("", clientID, os.Getenv, nil)
	}
	return azidentity.NewDefaultAzureCredential(nil)
}

func newKeyFingerprintCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "fingerprint KEYFILE",
		Short: "Print the fingerprint of a release key file (as images and error messages show it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeyFingerprint(args[0], cmd.OutOrStdout())
		},
	}
}

// runKeyFingerprint prints the fingerprint of the release key in keyFile.
func runKeyFingerprint(keyFile string, stdout io.Writer) error {
	key, err := keys.ReadKeyFile(keyFile)
	if err != nil {
		return err
	}
	defer keys.Zero(key)
	fmt.Fprintln(stdout, image.Fingerprint(key))
	return nil
}
