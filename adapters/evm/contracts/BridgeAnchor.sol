// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title EMR Ledger bridge anchor
/// @notice Holds the roots of EMR Ledger's append-only Merkle log on a target chain,
///         accepted only with EIP-712 signatures of k of the n validators. Any relayer
///         may submit; none can forge. Each new head must extend the previous one: the
///         contract checks the RFC 9162 consistency proof itself, so even k colluding
///         validators cannot fork history that is already on chain.
contract BridgeAnchor {
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant TREE_HEAD_TYPEHASH =
        keccak256("TreeHead(uint64 treeSize,bytes32 root,string sourceLedger,uint64 sourceBlock)");
    bytes32 private constant VALIDATOR_SET_TYPEHASH =
        keccak256("ValidatorSet(address[] validators,uint8 threshold,uint64 epoch)");
    /// secp256k1n / 2: signatures with a larger s are malleable copies, refused.
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    /// @notice The current validators, in ascending address order.
    address[] private validatorList;
    mapping(address => bool) public isValidator;
    /// @notice Signatures needed (k of n).
    uint8 public threshold;
    /// @notice Increments with every validator-set rotation.
    uint64 public epoch;
    /// @notice The root accepted for each tree size (zero: none).
    mapping(uint64 => bytes32) public rootOf;
    /// @notice The largest tree size accepted so far.
    uint64 public latestSize;

    event HeadBridged(uint64 indexed size, bytes32 root, string sourceLedger, uint64 sourceBlock, address[] signers);
    event ValidatorsRotated(uint64 indexed epoch, address[] validators, uint8 threshold);

    error InvalidValidatorSet();
    error MalformedSignature(uint256 index);
    error NotValidator(address signer);
    error SignersNotAscending(uint256 index);
    error NotEnoughSignatures(uint256 valid, uint8 needed);
    error RootAlreadyAnchored(uint64 size, bytes32 anchored);
    error NotAppendOnly(uint64 size, uint64 latest);
    error InconsistentHead(uint64 size, uint64 previousSize);

    constructor(address[] memory validators, uint8 k) {
        setValidators(validators, k);
    }

    /// @notice The current validator set.
    function getValidators() external view returns (address[] memory) {
        return validatorList;
    }

    /// @notice The EIP-712 domain: this contract on this chain, so a signature for
    ///         another chain or another contract never verifies here.
    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("EMR Ledger Bridge"), keccak256("1"), block.chainid, address(this))
        );
    }

    /// @notice What validators sign for a tree head.
    function treeHeadDigest(uint64 size, bytes32 root, string calldata sourceLedger, uint64 sourceBlock)
        public
        view
        returns (bytes32)
    {
        bytes32 structHash =
            keccak256(abi.encode(TREE_HEAD_TYPEHASH, size, root, keccak256(bytes(sourceLedger)), sourceBlock));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// @notice What validators sign to rotate to `validators` at epoch `nextEpoch`.
    function validatorSetDigest(address[] calldata validators, uint8 k, uint64 nextEpoch) public view returns (bytes32) {
        bytes32 structHash =
            keccak256(abi.encode(VALIDATOR_SET_TYPEHASH, keccak256(abi.encodePacked(validators)), k, nextEpoch));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// @notice Accepts `root` for `size` with k validator signatures (ordered by signer
    ///         address) and, when a head exists, a consistency proof from the latest
    ///         head. The same root again is a no-op, so retries are safe.
    function submitHead(
        uint64 size,
        bytes32 root,
        string calldata sourceLedger,
        uint64 sourceBlock,
        bytes32[] calldata consistencyProof,
        bytes[] calldata signatures
    ) external {
        bytes32 existing = rootOf[size];
        if (existing != bytes32(0)) {
            if (existing == root) return;
            revert RootAlreadyAnchored(size, existing);
        }
        if (size <= latestSize) revert NotAppendOnly(size, latestSize);
        address[] memory signers = checkQuorum(treeHeadDigest(size, root, sourceLedger, sourceBlock), signatures);
        uint64 previous = latestSize;
        if (previous > 0 && !verifyConsistency(previous, size, rootOf[previous], root, consistencyProof)) {
            revert InconsistentHead(size, previous);
        }
        rootOf[size] = root;
        latestSize = size;
        emit HeadBridged(size, root, sourceLedger, sourceBlock, signers);
    }

    /// @notice Replaces the validator set, approved by k of the current validators.
    function rotateValidators(address[] calldata validators, uint8 k, bytes[] calldata signatures) external {
        uint64 nextEpoch = epoch + 1;
        checkQuorum(validatorSetDigest(validators, k, nextEpoch), signatures);
        for (uint256 i = 0; i < validatorList.length; i++) {
            isValidator[validatorList[i]] = false;
        }
        setValidators(validators, k);
        epoch = nextEpoch;
        emit ValidatorsRotated(nextEpoch, validators, k);
    }

    function setValidators(address[] memory validators, uint8 k) private {
        if (k == 0 || k > validators.length) revert InvalidValidatorSet();
        delete validatorList;
        address last = address(0);
        for (uint256 i = 0; i < validators.length; i++) {
            if (validators[i] <= last) revert InvalidValidatorSet();
            last = validators[i];
            isValidator[last] = true;
            validatorList.push(last);
        }
        threshold = k;
    }

    /// Recovers each signer; they must be current validators in strictly ascending
    /// order (so none counts twice) and at least `threshold` of them.
    function checkQuorum(bytes32 digest, bytes[] calldata signatures) private view returns (address[] memory signers) {
        if (signatures.length < threshold) revert NotEnoughSignatures(signatures.length, threshold);
        signers = new address[](signatures.length);
        address last = address(0);
        for (uint256 i = 0; i < signatures.length; i++) {
            address signer = recover(digest, signatures[i], i);
            if (!isValidator[signer]) revert NotValidator(signer);
            if (signer <= last) revert SignersNotAscending(i);
            last = signer;
            signers[i] = signer;
        }
    }

    function recover(bytes32 digest, bytes calldata signature, uint256 index) private pure returns (address) {
        if (signature.length != 65) revert MalformedSignature(index);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) revert MalformedSignature(index);
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert MalformedSignature(index);
        return signer;
    }

    /// @notice RFC 9162 section 2.1.4.2: does the tree of `second` leaves with root
    ///         `secondRoot` extend the tree of `first` leaves with root `firstRoot`?
    function verifyConsistency(
        uint64 first,
        uint64 second,
        bytes32 firstRoot,
        bytes32 secondRoot,
        bytes32[] calldata proof
    ) public pure returns (bool) {
        if (first == 0 || first > second) return false;
        if (first == second) return proof.length == 0 && firstRoot == secondRoot;
        bool firstIsPowerOfTwo = first & (first - 1) == 0;
        uint256 start = firstIsPowerOfTwo ? 0 : 1;
        if (proof.length + (firstIsPowerOfTwo ? 1 : 0) == 0) return false;
        bytes32 seed = firstIsPowerOfTwo ? firstRoot : proof[0];
        uint64 fn_ = first - 1;
        uint64 sn = second - 1;
        while (fn_ & 1 == 1) {
            fn_ >>= 1;
            sn >>= 1;
        }
        bytes32 fr = seed;
        bytes32 sr = seed;
        for (uint256 i = start; i < proof.length; i++) {
            if (sn == 0) return false;
            bytes32 c = proof[i];
            if (fn_ & 1 == 1 || fn_ == sn) {
                fr = sha256(abi.encodePacked(bytes1(0x01), c, fr));
                sr = sha256(abi.encodePacked(bytes1(0x01), c, sr));
                while (fn_ & 1 == 0 && fn_ != 0) {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            } else {
                sr = sha256(abi.encodePacked(bytes1(0x01), sr, c));
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        return sn == 0 && fr == firstRoot && sr == secondRoot;
    }
}
