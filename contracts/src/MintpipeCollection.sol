// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721URIStorage} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721URIStorage.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title mintpipe's ERC-721 collection
/// @notice Each token is minted from an EIP-712 voucher that the mintpipe service signed for one job:
/// `MintVoucher{address to, string tokenURI, bytes32 jobId, uint256 deadline}`. Anyone may send the
/// transaction (the collector's wallet or the service's relayer); the token always goes to `to`, and each
/// job id mints at most once. Metadata update events follow ERC-4906, royalties ERC-2981.
contract MintpipeCollection is ERC721URIStorage, ERC2981, EIP712, AccessControl {
    /// @notice Holders of this role sign mint vouchers.
    bytes32 public constant SIGNER_ROLE = keccak256("SIGNER_ROLE");

    /// @notice The EIP-712 type hash of a voucher.
    bytes32 public constant MINT_VOUCHER_TYPEHASH =
        keccak256("MintVoucher(address to,string tokenURI,bytes32 jobId,uint256 deadline)");

    /// @notice The token minted for a job id (0: none yet; token ids start at 1).
    mapping(bytes32 jobId => uint256 tokenId) public tokenOfJob;

    /// @notice How many tokens were minted (the last token id).
    uint256 public totalMinted;

    /// @notice The voucher's deadline is in the past: ask the service for a fresh voucher.
    error VoucherExpired(uint256 deadline, uint256 timestamp);
    /// @notice The signature does not come from a current signer for this voucher on this chain and
    /// contract (tampered fields, another key, another chain or another contract all land here).
    error InvalidVoucherSignature(address recovered);
    /// @notice This job already has its token.
    error JobAlreadyMinted(bytes32 jobId, uint256 tokenId);
    /// @notice A voucher must carry a token URI.
    error EmptyTokenURI();
    /// @notice The zero address cannot hold SIGNER_ROLE: a signature that fails to recover recovers to it.
    error ZeroSigner();
    /// @notice The collection needs an admin (DEFAULT_ADMIN_ROLE) other than the zero address.
    error ZeroAdmin();

    /// @notice A voucher was redeemed: job `jobId` became token `tokenId`, owned by `to`.
    event VoucherRedeemed(bytes32 indexed jobId, uint256 indexed tokenId, address indexed to, address signer);
    /// @notice The collection-wide royalty changed (ERC-2981).
    event DefaultRoyaltyUpdated(address indexed receiver, uint96 feeNumerator);

    /// @param name_ collection name, also the EIP-712 domain name (domain version "1")
    /// @param symbol_ collection symbol
    /// @dev Reverts with ZeroAdmin or ZeroSigner when `admin` or `signer` is the zero address.
    /// @param admin holds DEFAULT_ADMIN_ROLE: manages signers and royalties
    /// @param signer the first voucher signer
    /// @param royaltyReceiver who receives royalties
    /// @param royaltyBps royalty in basis points (500 = 5 %)
    constructor(
        string memory name_,
        string memory symbol_,
        address admin,
        address signer,
        address royaltyReceiver,
        uint96 royaltyBps
    ) ERC721(name_, symbol_) EIP712(name_, "1") {
        if (admin == address(0)) revert ZeroAdmin();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(SIGNER_ROLE, signer);
        _setDefaultRoyalty(royaltyReceiver, royaltyBps);
        emit DefaultRoyaltyUpdated(royaltyReceiver, royaltyBps);
    }

    /// @notice Mint the token a voucher describes to `to`.
    /// @dev Reverts with VoucherExpired, JobAlreadyMinted, EmptyTokenURI or InvalidVoucherSignature.
    /// Emits Transfer, MetadataUpdate (ERC-4906) and VoucherRedeemed.
    /// @param to the token's owner (the job's wallet)
    /// @param uri the token URI (ipfs://<metadata cid>)
    /// @param jobId the mintpipe job id (16 bytes, left-padded with zeros)
    /// @param deadline unix time after which the voucher is refused
    /// @param signature a signer's EIP-712 signature over the voucher
    /// @return tokenId the new token's id
    function mint(address to, string calldata uri, bytes32 jobId, uint256 deadline, bytes calldata signature)
        external
        returns (uint256 tokenId)
    {
        if (block.timestamp > deadline) revert VoucherExpired(deadline, block.timestamp);
        uint256 existing = tokenOfJob[jobId];
        if (existing != 0) revert JobAlreadyMinted(jobId, existing);
        if (bytes(uri).length == 0) revert EmptyTokenURI();
        address signer = recoverVoucherSigner(to, uri, jobId, deadline, signature);
        // A failed recovery is address(0), never a signer's (even if address(0) somehow held the role).
        if (signer == address(0) || !hasRole(SIGNER_ROLE, signer)) revert InvalidVoucherSignature(signer);

        tokenId = ++totalMinted;
        tokenOfJob[jobId] = tokenId;
        _mint(to, tokenId);
        _setTokenURI(tokenId, uri);
        emit VoucherRedeemed(jobId, tokenId, to, signer);
    }

    /// @notice The address that signed a voucher (whether or not it is a signer).
    /// @param to the voucher's recipient
    /// @param uri the voucher's token URI
    /// @param jobId the voucher's job id
    /// @param deadline the voucher's deadline
    /// @param signature the signature to check
    /// @return the recovered address (the zero address for a malformed signature)
    function recoverVoucherSigner(
        address to,
        string calldata uri,
        bytes32 jobId,
        uint256 deadline,
        bytes calldata signature
    ) public view returns (address) {
        bytes32 structHash = keccak256(abi.encode(MINT_VOUCHER_TYPEHASH, to, keccak256(bytes(uri)), jobId, deadline));
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(_hashTypedDataV4(structHash), signature);
        return err == ECDSA.RecoverError.NoError ? recovered : address(0);
    }

    /// @notice Change the collection-wide royalty (admin only).
    /// @param receiver who receives royalties
    /// @param feeNumerator royalty in basis points
    function setDefaultRoyalty(address receiver, uint96 feeNumerator) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setDefaultRoyalty(receiver, feeNumerator);
        emit DefaultRoyaltyUpdated(receiver, feeNumerator);
    }

    /// @dev Every grant of a role goes through here (constructor and grantRole alike): SIGNER_ROLE is
    /// refused to the zero address with ZeroSigner.
    function _grantRole(bytes32 role, address account) internal virtual override returns (bool) {
        if (role == SIGNER_ROLE && account == address(0)) revert ZeroSigner();
        return super._grantRole(role, account);
    }

    /// @notice ERC-165: ERC-721, ERC-721 metadata, ERC-4906, ERC-2981 and AccessControl.
    /// @param interfaceId the interface to ask about
    /// @return whether this contract implements it
    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC721URIStorage, ERC2981, AccessControl)
        returns (bool)
    {
        return super.supportsInterface(interfaceId);
    }

    /// @notice The token's metadata URI (the voucher's tokenURI).
    /// @param tokenId the token
    /// @return its URI
    function tokenURI(uint256 tokenId) public view override(ERC721URIStorage) returns (string memory) {
        return super.tokenURI(tokenId);
    }
}
